"""Rebuild the tokenizer data bundled in src/ccr_fast/tokens/data from the PyPI wheels that ship it.

ccr-fast never downloads tokenizer data at run time; the files it counts with are committed, and this
script says where each one comes from and checks it, so anyone can reproduce them byte for byte:

* ``o200k_base.tiktoken``: OpenAI's o200k_base ranks. tiktoken's own wheel does not include them, but the
  ``litellm`` wheel does, under the name tiktoken gives its cache files (the sha1 of the download URL).
  Checked against the sha256 tiktoken itself expects (``tiktoken_ext/openai_public.py``).
* ``qwen.tiktoken``: the Qwen byte-level BPE vocabulary (Qwen 1 to Qwen 3 share it), from Alibaba's
  ``dashscope`` SDK wheel (Apache-2.0), which counts with it through tiktoken.
* ``deepseek_v3.tiktoken`` and ``deepseek_v3.special.json``: DeepSeek-V3's tokenizer (also R1, V3.1, V3.2;
  MIT, DeepSeek) from the ``tokenizer.json`` in the ``litellm`` wheel, converted to tiktoken's format. The
  conversion is exact only because DeepSeek's merges come in the order of the ids they produce, which is
  checked here (tiktoken merges by rank, Hugging Face tokenizers by merge order).

Usage::

    pip download litellm dashscope --no-deps -d /tmp/wheels
    python scripts/tokenizer_data.py /tmp/wheels/litellm-*.whl /tmp/wheels/dashscope-*.whl

The sha256 of every written file is printed; ``ccr_fast.tokens.encodings`` pins the same values.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import tiktoken_ext.openai_public as openai_public

DATA = Path(__file__).resolve().parent.parent / "src" / "ccr_fast" / "tokens" / "data"
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
LITELLM_TOKENIZERS = "litellm/litellm_core_utils/tokenizers/"
QWEN_IN_DASHSCOPE = "dashscope/resources/qwen.tiktoken"
QWEN_SHA256 = "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tiktoken_expected_hash(function: str) -> str:
    """The ``expected_hash`` tiktoken passes when it downloads ``function``'s ranks."""
    source = Path(openai_public.__file__).read_text()
    body = source.split(f"def {function}():", 1)[1]
    found = re.search(r'expected_hash="([0-9a-f]{64})"', body)
    if found is None:
        raise SystemExit(f"no expected_hash for {function} in {openai_public.__file__}")
    return found.group(1)


def write(name: str, data: bytes) -> None:
    (DATA / name).write_bytes(data)
    print(f"{name}: {len(data)} bytes, sha256 {sha256(data)}")


def o200k(litellm: zipfile.ZipFile) -> None:
    member = LITELLM_TOKENIZERS + hashlib.sha1(O200K_URL.encode()).hexdigest()
    data = litellm.read(member)
    expected = tiktoken_expected_hash("o200k_base")
    if sha256(data) != expected:
        raise SystemExit(f"{member}: sha256 {sha256(data)}, tiktoken expects {expected}")
    write("o200k_base.tiktoken", data)


def qwen(dashscope: zipfile.ZipFile) -> None:
    data = dashscope.read(QWEN_IN_DASHSCOPE)
    if sha256(data) != QWEN_SHA256:
        raise SystemExit(f"{QWEN_IN_DASHSCOPE}: sha256 {sha256(data)}, expected {QWEN_SHA256}")
    write("qwen.tiktoken", data)
    license_name = next(n for n in dashscope.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
    write("LICENSE-qwen", dashscope.read(license_name))


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: the printable character that stands for each byte."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(char): byte for byte, char in zip(printable, chars, strict=True)}


def deepseek(litellm: zipfile.ZipFile) -> None:
    spec: dict[str, Any] = json.loads(litellm.read(LITELLM_TOKENIZERS + "deepseek_tokenizer.json"))
    model = spec["model"]
    if model["type"] != "BPE" or spec["decoder"]["type"] != "ByteLevel":
        raise SystemExit("deepseek_tokenizer.json is not a byte-level BPE")
    decode = _byte_decoder()

    def as_bytes(token: str) -> bytes:
        return bytes(decode[char] for char in token)

    added = {entry["content"]: entry["id"] for entry in spec["added_tokens"]}
    added_ids = set(added.values())
    ranks = {as_bytes(token): rank for token, rank in model["vocab"].items() if rank not in added_ids}
    if any(bytes([byte]) not in ranks for byte in range(256)):
        raise SystemExit("a single byte has no rank")
    last = -1
    for merge in model["merges"]:
        first, second = merge.split(" ") if isinstance(merge, str) else merge
        rank = ranks[as_bytes(first) + as_bytes(second)]
        if rank <= last:
            raise SystemExit(f"merge {merge!r} is out of rank order: tiktoken would merge differently")
        last = rank
    lines = [base64.b64encode(token) + b" " + str(rank).encode() for token, rank in ranks.items()]
    lines.sort(key=lambda line: int(line.rsplit(b" ", 1)[1]))
    write("deepseek_v3.tiktoken", b"\n".join(lines) + b"\n")
    write("deepseek_v3.special.json", json.dumps(added, ensure_ascii=False, indent=0).encode())
    write("LICENSE-deepseek", litellm.read(LITELLM_TOKENIZERS + "deepseek_tokenizer_LICENSE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("litellm_wheel", type=Path)
    parser.add_argument("dashscope_wheel", type=Path)
    args = parser.parse_args()
    with zipfile.ZipFile(args.litellm_wheel) as litellm, zipfile.ZipFile(args.dashscope_wheel) as dashscope:
        o200k(litellm)
        qwen(dashscope)
        deepseek(litellm)


if __name__ == "__main__":
    main()
