"""What a file is, from its first bytes (standard library only: usable before heavy imports)."""
from __future__ import annotations

from typing import Optional


def describe_non_checkpoint(path: str) -> Optional[str]:
    """What ``path`` is when it cannot be a ``torch.save`` file, else None.

    ``torch.save`` writes a zip archive (or, before torch 1.6, a pickle that
    starts with the protocol byte 0x80); anything else is named from its first
    bytes, so that a text or image file given as a checkpoint is reported as
    such rather than as "pickled Python objects".
    """
    try:
        with open(path, 'rb') as f:
            head = f.read(512)
    except OSError:
        return None  # torch.load reports it
    if head[:4] == b'PK\x03\x04' or head[:1] == b'\x80':
        return None
    if not head:
        return 'the file is empty'
    if len(head) >= 9 and head[8:9] == b'{' and int.from_bytes(head[:8], 'little') < 1 << 32:
        return 'a safetensors file: give it as --weights of a model, not as a checkpoint'
    for magic, name in ((b'\x89PNG', 'a PNG image'), (b'\xff\xd8\xff', 'a JPEG image'),
                        (b'\x1f\x8b', 'a gzip archive'), (b'GIF8', 'a GIF image')):
        if head.startswith(magic):
            return f'it is {name}'
    if b'\x00' in head:
        return 'unknown binary content'
    text = head.decode('utf-8', errors='replace')
    first = text.strip().splitlines()[0][:40] if text.strip() else ''
    return f"it is a text file starting with '{first}'"


__all__ = ['describe_non_checkpoint']
