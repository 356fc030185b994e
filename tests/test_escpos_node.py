"""A ticket printer on a node, over Mosquitto, with nothing under hallctl/node/ knowing printers:
the birth announces the kind's actions and the model's features, a ticket prints through the
command topic, bad arguments never reach the printer, and paper out is a device state and a
status_changed event with the reason, until the paper is back."""

from __future__ import annotations

import asyncio
import json

from escpos_samples import LINK, SAMPLE, profile
from hallkit import HALL, Observer, Running

from hallctl.bus.topics import Topics
from hallctl.config import parse_node_config
from hallctl.node.daemon import Node
from hallctl_drivers.escpos.emulator import PtyPrinter

T = Topics(HALL)
NID = "kiosk-1"


def _config(host: str, port: int, tmp, printer_port: str) -> dict:
    return {
        "node": {"id": NID, "hall": HALL},
        "mqtt": {"host": host, "port": port, "keepalive": 5},
        "store": {"path": str(tmp / f"{NID}.db")},
        "device": [{"id": "printer", "profile": "snbc-bt-t080", "probe_interval_s": 0.2,
                    "options": {"port": printer_port, "status_timeout_s": 0.5, "print_timeout_s": 1.0}}],
    }


async def test_a_ticket_printer_on_a_node(mosquitto, tmp_path) -> None:
    with PtyPrinter.for_profile(profile("snbc-bt-t080")) as emu:
        node = Node(parse_node_config(_config(mosquitto.host, mosquitto.port, tmp_path, emu.port)))
        topics = [T.node_birth(NID), T.dev_state(NID, "printer"), T.dev_res(NID, "printer", "print").rsplit("/", 1)[0] + "/+",
                  T.dev_event(NID, "printer", "status_changed")]
        async with Observer(mosquitto.host, mosquitto.port, topics) as obs:
            run = Running(node)
            try:
                birth = (await obs.wait_for(T.node_birth(NID), lambda d: d["devices"]))[-1]
                (dev,) = birth["devices"]
                assert dev["kind"] == "ticket_printer" and dev["features"] == ["chinese_native", "cutter"]
                assert dev["actions"] == ["print", "probe", "recover", "status", "test_ticket"]
                assert dev["action_specs"]["test_ticket"]["test"] is True
                assert dev["action_specs"]["print"]["args"]["properties"]["blocks"]["items"]["properties"]["size"]["maximum"] == 8
                await obs.wait_for(T.dev_state(NID, "printer"), lambda d: d["available"] and d["health"] == "ok")

                await obs.publish(T.dev_cmd(NID, "printer", "print"), {"v": 1, "request_id": "p1", "data": {"blocks": SAMPLE}})
                ok = (await obs.wait_for(T.dev_res(NID, "printer", "print")))[0]
                assert ok["status"] == "ok" and ok["data"]["confirmed"] is True and ok["data"]["path"] == "native"
                assert len(emu.tickets) == 1 and "A012" in emu.tickets[0].lines

                sent = len(emu.printer.received)
                await obs.publish(T.dev_cmd(NID, "printer", "print"),
                                  {"v": 1, "request_id": "p2", "data": {"blocks": [{"text": "A013", "size": 9}]}})
                err = (await obs.wait_for(T.dev_res(NID, "printer", "print"), lambda d: d["request_id"] == "p2"))[0]
                assert err["error"]["code"] == "bad_request" and "size" in err["error"]["message"]
                assert emu.printer.received[sent:].replace(b"\x10\x04", b"").strip(b"\x01\x02\x03\x04") == b"", \
                    "only status queries went out"

                emu.set(paper_out=True)
                state = (await obs.wait_for(T.dev_state(NID, "printer"), lambda d: d["health"] == "fault"))[-1]
                assert state["available"] is False and "paper out" in state["reason"]
                event = (await obs.wait_for(T.dev_event(NID, "printer", "status_changed"),
                                            lambda d: d["data"]["reason"] == "paper out"))[-1]
                assert event["data"]["health"] == "fault" and event["data"]["status"]["paper_end"] is True

                after = len(obs.messages)  # an ok state published after the fault (not a repeat of an earlier one)
                emu.set(paper_out=False)  # the node restarts the printer by itself, no one asks it to
                topic = T.dev_state(NID, "printer")
                async with asyncio.timeout(10):
                    while not any(t == topic and p and json.loads(p)["available"] and json.loads(p)["health"] == "ok"
                                  for t, p, _ in obs.messages[after:]):
                        await asyncio.sleep(0.05)
                await obs.publish(T.dev_cmd(NID, "printer", "print"), {"v": 1, "request_id": "p3", "data": {"blocks": SAMPLE}})
                ok = (await obs.wait_for(T.dev_res(NID, "printer", "print"), lambda d: d["request_id"] == "p3"))[0]
                assert ok["status"] == "ok", ok
                assert len(emu.tickets) == 2 and emu.tickets[-1].cut
                assert emu.tickets[-1].rasters == 1  # this model's QR goes as an image
            finally:
                async with asyncio.timeout(10):
                    await run.stop()
        assert not emu.errors
    assert LINK  # the sample carries the link the QR tests read back
