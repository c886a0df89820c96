"""Feedback and prompt tuning: reactions become votes, votes choose and tune prompt variants.

``opencomputer.bot.feedback.feature:setup`` wires it into the App; see ``docs/self-improvement.md``.
"""
