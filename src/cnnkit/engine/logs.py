"""Training logs: a CSV file and TensorBoard event files, without the tensorboard package.

``metrics.csv`` is in long format, one figure per row: ``epoch,step,split,name,value`` (split is
``train`` or ``val``; ``epoch`` counts completed epochs, so figures logged during the first
epoch have epoch 0 and its validation epoch 1). New metric names need no new columns.

Event files follow TensorFlow's TFRecord framing: each record is the data length (uint64,
little-endian), the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the
data. The data is an ``Event`` protocol buffer (wall_time = field 1 double, step = 2 varint,
file_version = 3 string, summary = 5 message) whose ``Summary`` holds ``Value`` messages
(tag = 1 string, simple_value = 2 float). The first event names the format, "brain.Event:2".
:func:`read_events` parses such files back and checks every CRC.
"""

from __future__ import annotations

import csv
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli polynomial, reflected), as TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 as two's complement, like protobuf
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2) + _varint(len(payload)) + payload


def encode_event(wall_time: float, step: int, *, scalars: dict[str, float] | None = None,
                 file_version: str | None = None) -> bytes:
    """One ``Event`` message with ``simple_value`` scalars (or a file-version marker)."""
    out = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step)
    if file_version is not None:
        out += _length_delimited(3, file_version.encode())
    if scalars:
        values = b"".join(_length_delimited(1, _length_delimited(1, tag.encode())
                                            + _field(2, 5) + struct.pack("<f", value))
                          for tag, value in scalars.items())
        out += _length_delimited(5, values)
    return out


def frame_record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", masked_crc32c(header)) + data
            + struct.pack("<I", masked_crc32c(data)))


class EventWriter:
    """Appends scalar events to ``events.out.tfevents.<time>.<host>`` in ``log_dir``."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = self.log_dir / name
        self._file = open(self.path, "ab")
        self._file.write(frame_record(encode_event(time.time(), 0, file_version="brain.Event:2")))
        self._file.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._file.write(frame_record(encode_event(time.time(), step, scalars=values)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _parse(data: bytes) -> list[tuple[int, Any]]:
    """Fields of one protobuf message as ``(number, value)``: ints, floats or bytes."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type == 1:
            value, pos = struct.unpack_from("<d", data, pos)[0], pos + 8
        elif wire_type == 5:
            value, pos = struct.unpack_from("<f", data, pos)[0], pos + 4
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        else:
            raise CnnkitError(f"unsupported protobuf wire type {wire_type}")
        fields.append((number, value))
    return fields


def read_records(path: str | Path) -> list[bytes]:
    """The data of every TFRecord in ``path``; a CRC mismatch raises CnnkitError."""
    raw, records, pos = Path(path).read_bytes(), [], 0
    while pos < len(raw):
        header = raw[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack_from("<I", raw, pos + 8)
        data = raw[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack_from("<I", raw, pos + 12 + length)
        if header_crc != masked_crc32c(header) or data_crc != masked_crc32c(data):
            raise CnnkitError(f"{path}: CRC mismatch in the record at byte {pos}")
        records.append(data)
        pos += 16 + length
    return records


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Events as dicts: ``wall_time``, ``step``, and ``file_version`` or ``scalars``."""
    events = []
    for record in read_records(path):
        event: dict[str, Any] = {"step": 0, "scalars": {}}
        for number, value in _parse(record):
            if number == 1:
                event["wall_time"] = value
            elif number == 2:
                event["step"] = value
            elif number == 3:
                event["file_version"] = value.decode()
            elif number == 5:
                for vnumber, vbytes in _parse(value):
                    if vnumber == 1:
                        parts = dict(_parse(vbytes))
                        event["scalars"][parts[1].decode()] = parts.get(2, 0.0)
        events.append(event)
    return events


class RunLogger:
    """Writes figures to ``metrics.csv`` and TensorBoard events under ``run_dir``.

    A disabled logger (non-zero ranks of a distributed run) accepts calls and writes nothing.
    """

    def __init__(self, run_dir: str | Path, *, enabled: bool = True,
                 tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.csv_path = Path(run_dir) / "metrics.csv"
        self._csv = None
        self.events: EventWriter | None = None
        if not enabled:
            return
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        new = not self.csv_path.exists()
        self._csv = open(self.csv_path, "a", newline="")
        self._writer = csv.writer(self._csv)
        if new:
            self._writer.writerow(["epoch", "step", "split", "name", "value"])
        if tensorboard:
            self.events = EventWriter(Path(run_dir) / "tensorboard")

    def drop_after(self, step: int) -> None:
        """Remove CSV rows past ``step`` (a resumed run repeats the steps after its checkpoint)."""
        if not self.enabled or self._csv is None:
            return
        self._csv.close()
        with open(self.csv_path, newline="") as handle:
            rows = list(csv.reader(handle))
        kept = rows[:1] + [r for r in rows[1:] if int(r[1]) <= step]
        with open(self.csv_path, "w", newline="") as handle:
            csv.writer(handle).writerows(kept)
        self._csv = open(self.csv_path, "a", newline="")
        self._writer = csv.writer(self._csv)

    def log(self, split: str, values: dict[str, float], *, epoch: int, step: int) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self._writer.writerow([epoch, step, split, name, repr(float(value))])
        if self.events is not None:
            self.events.scalars(step, {f"{split}/{n}": float(v) for n, v in values.items()})
        self.flush()

    def flush(self) -> None:
        if self._csv is not None:
            self._csv.flush()
        if self.events is not None:
            self.events.flush()

    def close(self) -> None:
        if self._csv is not None and not self._csv.closed:
            self._csv.close()
        if self.events is not None:
            self.events.close()
