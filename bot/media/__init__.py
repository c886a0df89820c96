"""Attachments: sniffing, speech, images and documents (issue 15)."""
