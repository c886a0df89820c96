"""Home automation over MQTT for a named set of devices (``OC_HOME_DEVICES``).

Only the devices in the setting are reachable: the model names a device, never a topic, so it
cannot publish to arbitrary topics on the broker.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from opencomputer import PluginContext, ToolError, tool


def _devices(ctx: PluginContext) -> dict[str, dict[str, str]]:
    try:
        devices = json.loads(ctx.settings.get("OC_HOME_DEVICES", "{}"))
    except ValueError as exc:
        raise ToolError(f"OC_HOME_DEVICES is not valid JSON: {exc}") from None
    if not isinstance(devices, dict):
        raise ToolError("OC_HOME_DEVICES must be a JSON object of devices")
    return {str(k): dict(v) for k, v in devices.items()}


def _device(ctx: PluginContext, name: str) -> dict[str, str]:
    devices = _devices(ctx)
    if name not in devices:
        raise ToolError(f"unknown device {name!r}; known: {', '.join(sorted(devices)) or 'none'}")
    return devices[name]


def _client(ctx: PluginContext) -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"oc-home-{id(ctx)}")
    user = ctx.settings.get("OC_HOME_MQTT_USERNAME")
    if user:
        client.username_pw_set(user, ctx.settings.get("OC_HOME_MQTT_PASSWORD"))
    host = ctx.settings.get("OC_HOME_MQTT_HOST", "127.0.0.1")
    port = int(ctx.settings.get("OC_HOME_MQTT_PORT", "1883"))
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise ToolError(f"cannot reach the MQTT broker at {host}:{port}: {exc}") from None
    return client


@tool
def list_devices(ctx: PluginContext) -> str:
    """List the home devices I can control."""
    devices = _devices(ctx)
    return "\n".join(f"{name}: {', '.join(sorted(d))}" for name, d in sorted(devices.items()))


@tool
def set_device(device: str, value: str, ctx: PluginContext) -> str:
    """Send a command to a home device (for example turn a lamp ON or OFF).

    Args:
        device: The device's name, as listed by list_devices.
        value: The payload to send, such as ON, OFF or 21.5.
    """
    topic = _device(ctx, device).get("set")
    if not topic:
        raise ToolError(f"{device} cannot be controlled (no 'set' topic)")
    client = _client(ctx)
    client.loop_start()
    try:
        info = client.publish(topic, value, qos=1)
        info.wait_for_publish(timeout=5)
        if not info.is_published():
            raise ToolError(f"the broker did not confirm the command to {device}")
    finally:
        client.disconnect()
        client.loop_stop()
    return f"Sent {value} to {device}."


@tool
def device_state(device: str, ctx: PluginContext, wait: float = 3.0) -> str:
    """Read a home device's current state (its last reported value).

    Args:
        device: The device's name, as listed by list_devices.
        wait: Seconds to wait for the device to report.
    """
    topic = _device(ctx, device).get("state")
    if not topic:
        raise ToolError(f"{device} does not report a state (no 'state' topic)")
    got: list[str] = []
    arrived = threading.Event()

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        got.append(message.payload.decode(errors="replace"))
        arrived.set()

    client = _client(ctx)
    client.on_message = on_message
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        arrived.wait(timeout=min(max(wait, 0.1), 10.0))
    finally:
        client.disconnect()
        client.loop_stop()
    if not got:
        return f"{device} has not reported a state within {wait:g} s."
    return f"{device} is {got[0]}"
