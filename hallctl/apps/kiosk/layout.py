"""The printed ticket: central's ``ticket.issue`` answer -> the printer's ``print`` document.

Layout-neutral blocks (hallctl_drivers.escpos.document): the printer's profile decides native
Chinese or a raster image, native QR or an image. The number is printed very large; the phone
only masked; the QR holds the ticket's status link (its token is the only secret on the paper,
as it must be: the citizen scans it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from hallctl.apps.kiosk.templates import Texts, fill

#: the number's size multiplier (8 is the largest ESC/POS size; 5 fits "A012" on 58 mm paper)
NUMBER_SIZE = 5


def ticket_blocks(answer: Mapping[str, Any], texts: Texts, *, hall_name: str, queue_name: str,
                  matter_name: str | None, where: str | None, now: datetime) -> list[dict[str, Any]]:
    """The blocks of one ticket from central's answer (a pending ticket: its figures as they
    will be once confirmed)."""
    t, tt = answer["ticket"], texts["ticket"]
    fields = {"hall_name": hall_name, "queue_name": queue_name, "matter_name": matter_name or queue_name,
              "where": where or "", "people_ahead": answer.get("people_ahead"),
              "wait": _minutes(answer.get("predicted_wait_min")), "time": now.strftime("%Y-%m-%d %H:%M"),
              "phone_masked": t.get("phone_masked"), "number": t["number"]}
    blocks: list[dict[str, Any]] = []
    if hall_name:
        blocks.append({"text": fill(tt["header"], **fields), "align": "center", "bold": True})
    blocks += [{"rule": True},
               {"text": fill(tt["number_caption"], **fields), "align": "center"},
               {"text": t["number"], "size": NUMBER_SIZE, "align": "center", "bold": True}]
    if t.get("priority") in ("green", "online", "appointment"):
        blocks.append({"text": tt[t["priority"]], "size": 2, "align": "center", "bold": True})
    blocks.append({"text": fill(tt["matter"] if matter_name else tt["queue"], **fields)})
    if where:
        blocks.append({"text": fill(tt["where"], **fields), "bold": True})
    if answer.get("people_ahead") is not None:
        blocks.append({"text": fill(tt["ahead"], **fields)})
    if fields["wait"] is not None:
        blocks.append({"text": fill(tt["wait"], **fields)})
    blocks.append({"text": fill(tt["time"], **fields)})
    if t.get("phone_masked"):
        blocks.append({"text": fill(tt["phone"], **fields)})
    if answer.get("link"):
        blocks += [{"qr": answer["link"], "align": "center"},
                   {"text": fill(tt["qr_caption"], **fields), "align": "center"}]
    blocks += [{"rule": True}, {"text": fill(tt["notice"], **fields)}]
    return [b for b in blocks if "text" not in b or b["text"].strip()]


def _minutes(value: Any) -> int | None:
    return None if not isinstance(value, (int, float)) else max(0, round(value))
