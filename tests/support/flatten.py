"""A report as a flat map of field paths to values, repeated messages keyed by what
identifies them (a pod's sandbox id, a container's id, an interface's name), so two
reports of the same node can be compared field by field."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# the field that names each element of a repeated message field
KEYS = {
    "pods": "sandbox_id",
    "containers": "id",
    "network": "name",
    "interfaces": "name",
    "checks": "name",
    "block_io": "device",
    "pressure": "resource",
    "image_filesystems": "mountpoint",
    "filesystems": "mountpoint",
    "disks": "device",
    "cpus": "cpu",
}


def _key(name: str, element: Message, index: int) -> str:
    field = KEYS.get(name)
    return str(getattr(element, field)) if field is not None else str(index)


def flatten(message: Message, prefix: str = "") -> dict[str, Any]:
    """Every set field of `message` (and of the messages in it) as "a.b[key].c" -> value."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    out.update(flatten(item, f"{path}[{key}]."))
                else:
                    out[f"{path}[{key}]"] = item
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                for index, element in enumerate(value):
                    out.update(flatten(element, f"{path}[{_key(field.name, element, index)}]."))
            else:
                out.update(flatten(value, f"{path}."))
        elif field.is_repeated:
            out[path] = tuple(value)
        else:
            out[path] = value
    return out
