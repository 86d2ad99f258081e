"""Wire types of the sync protocol (docs/architecture.md §5.5, CONTRACT) and batch signing.

Entries travel as ``ledger.entry.Entry``; card-feed lines and the rules document are
``ledger.domain`` types. Everything is encoded with msgspec (JSON, integers only).

Card feed (``GET /v1/cards``, NDJSON): a ``CardsHeader`` line, then one
``CardRecord`` or ``CardRemoved`` a line, then a ``CardsEnd`` line whose ``count`` is the
number of card lines between header and end.

Usage feed (``GET /v1/partners/{pid}/usage``, NDJSON, contract 11.4): a ``UsageHeader``
line, then one ``UsageLine`` a line, then the same end line (``UsageEnd``). Leases
(``POST /v1/terminals/{tid}/leases``, contract 11.5): ``LeaseRequest`` → ``LeaseGrant``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.domain import Benefit, CardRecord, CardRemoved, Rules

# A chain's head on the wire is ledger.entry.Head: one type, everywhere.
from ledger.entry import Entry, Head

NDJSON = "application/x-ndjson"


# The protocol's paths (sync/openapi.yaml): one home, for the client and the doctor alike.
def head_path(terminal_id: str) -> str:
    return f"/v1/terminals/{terminal_id}/head"


def entries_path(terminal_id: str) -> str:
    return f"/v1/terminals/{terminal_id}/entries"


def cards_path(since: int | None) -> str:
    return "/v1/cards" if since is None else f"/v1/cards?since={since}"


def rules_path(partner_id: str) -> str:
    return f"/v1/partners/{partner_id}/rules"


def usage_path(partner_id: str, since: int | None = None) -> str:
    base = f"/v1/partners/{partner_id}/usage"
    return base if since is None else f"{base}?since={since}"


def leases_path(terminal_id: str) -> str:
    return f"/v1/terminals/{terminal_id}/leases"


# Error codes of the "error" member of 4xx replies.
ErrorCode = Literal[
    "gap",  # 409: the batch does not start at head + 1
    "fork",  # 409: a different hash at a seq the server holds
    "bad_hash",  # 422: an entry's hash or prev_hash link does not verify
    "bad_signature",  # 422: signature does not verify
    "unknown_key",  # 422: public key is not the one enrolled for this terminal
    "bad_entry",  # 422: an entry misses contract fields, wrong terminal, floats...
    "out_of_range",  # 422: an integer beyond ±(2^53 - 1) or the programme's bounds
    "bad_request",  # 400: body is not JSON of the expected shape, or empty batch
    "unauthorized",  # 401: no or unknown bearer token
    "forbidden",  # 403: token of another terminal / partner
    "not_found",  # 404
    "method_not_allowed",  # 405
    "too_large",  # 413: body over the server's limit
    "unsupported_encoding",  # 415
    "busy",  # 503: more uploads at once than the server verifies; retry after Retry-After
    "internal",  # 500
]


class UploadBatch(msgspec.Struct, frozen=True, kw_only=True):
    """POST /v1/terminals/{tid}/entries body, as a terminal sends it."""

    entries: list[Entry]
    signature: str  # base64 Ed25519 over signing_message(tid, last seq, last hash)
    public_key: str  # base64 raw 32-byte Ed25519 public key


class RawUploadBatch(msgspec.Struct, frozen=True, kw_only=True):
    """The same body as a server reads it: entries kept raw, so every hash is checked
    over exactly the object received (extension fields of other terminals included)."""

    entries: list[dict[str, Any]]
    signature: str
    public_key: str


class QuarantinedEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An uploaded entry the city stored but did not credit: its business does not add up
    (docs/architecture.md §5.9); ``reason`` is a code of ``sync.central.business.REASONS``."""

    seq: int
    reason: str


class HeadReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``GET /v1/terminals/{tid}/head``: the head, and every entry of the terminal the
    city still holds in quarantine (absent from an older server: none)."""

    seq: int
    hash: str
    quarantined: list[QuarantinedEntry] = []

    @property
    def head(self) -> Head:
        return Head(seq=self.seq, hash=self.hash)


class UploadOk(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """200 reply to an upload (appended, or a replay): the server's current head, and the
    batch's entries held in quarantine (absent from an older server: none)."""

    head: Head
    quarantined: list[QuarantinedEntry] = []


class UploadError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Every 4xx/5xx reply of the city server: ``{"error": code, "head"?, "message"?}``.

    ``head`` is present for 409 gap/fork and for 422 on uploads; ``seq`` names the
    offending entry when one is known.
    """

    error: str
    head: Head | None = None
    message: str = ""
    seq: int | None = None


ErrorReply = UploadError


class CardsHeader(msgspec.Struct, frozen=True, kw_only=True):
    """First line of the card feed.

    ``terminal_seq``: every ``points`` in the feed includes the requesting terminal's
    entries up to this seq (absent from a city that does not say).
    """

    version: int
    full: bool
    terminal_seq: int | None = None


class CardsEnd(msgspec.Struct, frozen=True, kw_only=True):
    """Last line of the card feed; ``count`` = card lines sent."""

    end: Literal[True]
    count: int


CardLine = CardRecord | CardRemoved

# Every integer on the wire fits a double exactly (as for entries): a count beyond it is
# refused, so what a JSON reader in any language reads back is what was meant.
MAX_WIRE_INT = 2**53 - 1
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]
WireInt = Annotated[int, msgspec.Meta(ge=-MAX_WIRE_INT, le=MAX_WIRE_INT)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class UsageHeader(msgspec.Struct, frozen=True, kw_only=True):
    """First line of the usage feed (``GET /v1/partners/{pid}/usage``, contract 11.4).

    ``terminal_seq``: the feed includes the requesting terminal's entries up to this seq
    (its head in the same snapshot); the till adds its own entries above it.
    """

    version: Count
    full: bool
    terminal_seq: Count


class UsageLine(msgspec.Struct, frozen=True, kw_only=True):
    """Net quantity (uses or hours, voids subtracted) of ``benefit`` used by ``holder``
    on the local ``date`` through every till of the partner; ``qty`` 0 removes the line."""

    holder: NonEmpty
    benefit: NonEmpty
    date: _dt.date
    qty: WireInt


# The usage feed ends like the card feed: {"end": true, "count": usage lines sent}.
UsageEnd = CardsEnd


class LeaseRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /v1/terminals/{tid}/leases`` body (contract 11.5).

    ``admitted``: new persons this till admitted to ``benefit``, net of voids, over its
    whole ledger; ``want``: the cumulative grant it asks to hold (below its grant: release).
    """

    benefit: NonEmpty
    admitted: Count
    want: Count


class LeaseGrant(msgspec.Struct, frozen=True, kw_only=True):
    """200 reply to a lease request: the till may admit while its count is below ``granted``;
    ``persons_used`` = other channels' persons + every till's ``admitted``."""

    benefit: str
    granted: Count
    persons_used: Count


class WireError(ValueError):
    """A message from the other side that does not decode as the protocol says."""


_encoder = msgspec.json.Encoder()
_head_decoder = msgspec.json.Decoder(Head)
_head_reply_decoder = msgspec.json.Decoder(HeadReply)
_upload_decoder = msgspec.json.Decoder(RawUploadBatch)
_ok_decoder = msgspec.json.Decoder(UploadOk)
_error_decoder = msgspec.json.Decoder(UploadError)
_header_decoder = msgspec.json.Decoder(CardsHeader)
_card_decoder = msgspec.json.Decoder(CardRecord)
_removed_decoder = msgspec.json.Decoder(CardRemoved)
_end_decoder = msgspec.json.Decoder(CardsEnd)
_rules_decoder = msgspec.json.Decoder(Rules)
_usage_header_decoder = msgspec.json.Decoder(UsageHeader)
_usage_line_decoder = msgspec.json.Decoder(UsageLine)
_lease_request_decoder = msgspec.json.Decoder(LeaseRequest)
_lease_grant_decoder = msgspec.json.Decoder(LeaseGrant)


def encode(obj: Any) -> bytes:
    """JSON bytes of a wire message."""
    return _encoder.encode(obj)


def encode_line(obj: Any) -> bytes:
    """One NDJSON line (with its newline)."""
    return _encoder.encode(obj) + b"\n"


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | str, what: str) -> Any:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise WireError(f"{what}: {e}") from None


def decode_head(data: bytes | str) -> Head:
    h: Head = _decode(_head_decoder, data, "head")
    return h


def decode_head_reply(data: bytes | str) -> HeadReply:
    h: HeadReply = _decode(_head_reply_decoder, data, "head")
    return h


def decode_upload(data: bytes | str) -> RawUploadBatch:
    b: RawUploadBatch = _decode(_upload_decoder, data, "upload batch")
    return b


def decode_upload_ok(data: bytes | str) -> UploadOk:
    ok: UploadOk = _decode(_ok_decoder, data, "upload reply")
    return ok


def decode_error(data: bytes | str) -> UploadError:
    err: UploadError = _decode(_error_decoder, data, "error reply")
    return err


_benefit_decoder = msgspec.json.Decoder(Benefit)


def _benefit_or_unsupported(raw: object, index: int) -> Benefit:
    """One benefit of the rules document; one the till cannot read keeps its id and name."""
    try:
        b: Benefit = _benefit_decoder.decode(_encoder.encode(raw))
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        fields = raw if isinstance(raw, dict) else {}
        bid, name = fields.get("id"), fields.get("name")
        return Benefit(
            id=bid if isinstance(bid, str) and bid else f"benefits[{index}]",
            name=name if isinstance(name, str) else "",
            unsupported=str(e),
        )
    return b


def decode_rules(data: bytes | str) -> Rules:
    """The partner's rules; a benefit the till cannot read is kept as unsupported.

    Only a document that is not a JSON object or has no ``version`` (or whose other
    parts do not decode) is rejected whole: one new ``unit`` in one benefit must not stop
    a till from selling (the contract's 11.1).
    """
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise WireError(f"rules: {e}") from None
    if not isinstance(raw, dict) or "version" not in raw:
        raise WireError("rules: not a JSON object with a version")
    benefits = raw.get("benefits")
    if not isinstance(benefits, list):
        r: Rules = _decode(_rules_decoder, data, "rules")
        return r
    rest: Rules = _decode(_rules_decoder, _encoder.encode({**raw, "benefits": []}), "rules")
    read = tuple(_benefit_or_unsupported(b, i) for i, b in enumerate(benefits))
    return msgspec.structs.replace(rest, benefits=read)


def decode_cards_header(line: bytes | str) -> CardsHeader:
    """The feed's first line; raises WireError when it is anything else."""
    h: CardsHeader = _decode(_header_decoder, line, "card feed header")
    return h


class CardLineInvalid(msgspec.Struct, frozen=True, kw_only=True):
    """A well-framed feed line (a JSON object) that is not a card (docs/architecture.md §5.5).

    It is quarantined alone: the till refuses that card (``card_data_invalid``) and
    applies every other line. ``number`` is None when not even the number is readable.
    """

    number: str | None
    reason: str


_any_json = msgspec.json.Decoder()


# The city writes a card line's number first; a line too deep to decode is known by it.
_LEADING_NUMBER = re.compile(rb'\{\s*"number"\s*:\s*"([^"\\]{1,64})"')


def decode_card_line(line: bytes | str) -> CardRecord | CardRemoved | CardsEnd | CardLineInvalid:
    """A feed line after the header: a card, a removal, the end line, or an invalid card."""
    try:
        return _decode_card_line(line)
    except RecursionError:
        # msgspec stops at the interpreter's depth limit: the line is an unreadable card
        # (a broken end line among them, so the feed then lacks its end and is refused).
        raw = line.encode("utf-8", "replace") if isinstance(line, str) else line
        m = _LEADING_NUMBER.match(raw)
        number = m.group(1).decode("utf-8", "replace") if m else None
        return CardLineInvalid(number=number, reason="the line nests too deeply to decode")


def _decode_card_line(line: bytes | str) -> CardRecord | CardRemoved | CardsEnd | CardLineInvalid:
    # ValidationError subclasses DecodeError: catch it first.
    try:
        rec: CardRecord = _card_decoder.decode(line)
        return rec
    except msgspec.ValidationError as e:
        first = e
    except msgspec.DecodeError as e:
        raise WireError(f"card feed line is not JSON: {e}") from None
    for dec in (_removed_decoder, _end_decoder):
        try:
            other: CardRemoved | CardsEnd = dec.decode(line)
            return other
        except msgspec.ValidationError:
            continue
    try:
        obj = _any_json.decode(line)
    except msgspec.DecodeError as e:  # the typed decoder may say "wrong type" first
        raise WireError(f"card feed line is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise WireError(f"card feed line is not an object: {first}") from None
    if "end" in obj:  # a broken end line is framing: the feed cannot be trusted whole
        raise WireError(f"card feed end line: {first}") from None
    number = obj.get("number")
    return CardLineInvalid(number=number if isinstance(number, str) else None, reason=str(first))


def decode_usage_header(line: bytes | str) -> UsageHeader:
    """The usage feed's first line; raises WireError when it is anything else."""
    h: UsageHeader = _decode(_usage_header_decoder, line, "usage feed header")
    return h


def decode_usage_line(line: bytes | str) -> UsageLine | CardsEnd:
    """A usage feed line after the header: a usage line or the end line.

    Unlike a card line, a usage line that does not decode is not skipped: a till that
    dropped one would count a holder's uses short, so the feed is refused whole.
    """
    try:
        return _decode_usage_line(line)
    except RecursionError:
        raise WireError("usage feed line nests too deeply to decode") from None


def _decode_usage_line(line: bytes | str) -> UsageLine | CardsEnd:
    try:
        u: UsageLine = _usage_line_decoder.decode(line)
        return u
    except msgspec.ValidationError as e:
        first = e
    except msgspec.DecodeError as e:
        raise WireError(f"usage feed line is not JSON: {e}") from None
    try:
        end: CardsEnd = _end_decoder.decode(line)
        return end
    except msgspec.ValidationError:
        pass
    try:
        obj = _any_json.decode(line)
    except msgspec.DecodeError as e:
        raise WireError(f"usage feed line is not JSON: {e}") from None
    what = "usage feed end line" if isinstance(obj, dict) and "end" in obj else "usage feed line"
    raise WireError(f"{what}: {first}") from None


def decode_lease_request(data: bytes | str) -> LeaseRequest:
    """A lease request body; counts are non-negative integers (no floats, no booleans)."""
    try:
        r: LeaseRequest = _decode(_lease_request_decoder, data, "lease request")
    except RecursionError:
        raise WireError("lease request: the body nests too deeply") from None
    return r


def decode_lease_grant(data: bytes | str) -> LeaseGrant:
    """The city's reply to a lease request."""
    g: LeaseGrant = _decode(_lease_grant_decoder, data, "lease grant")
    return g


# --- signing ------------------------------------------------------------------------


def signing_message(tid: str, last_seq: int, last_hash: str) -> bytes:
    """The ASCII bytes a batch's signature covers: '{tid}:{last seq}:{last hash}'."""
    return f"{tid}:{last_seq}:{last_hash}".encode("ascii")


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    """Base64 of the raw 32-byte public key (what enrolment and batches carry)."""
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign_batch(
    private_key: Ed25519PrivateKey, tid: str, entries: Sequence[Entry | dict[str, Any]]
) -> tuple[str, str]:
    """Sign a non-empty batch; returns (signature_b64, public_key_b64)."""
    if not entries:
        raise ValueError("cannot sign an empty batch")
    last = entries[-1]
    seq, h = (last.seq, last.hash) if isinstance(last, Entry) else (last["seq"], last["hash"])
    sig = private_key.sign(signing_message(tid, seq, h))
    return base64.b64encode(sig).decode("ascii"), public_key_b64(private_key)


def load_public_key(public_key_b64: str) -> Ed25519PublicKey:
    """Decode a base64 raw Ed25519 public key; raises WireError when it is not one."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as e:
        raise WireError(f"public key is not base64 of 32 raw Ed25519 bytes: {e}") from None


def verify_batch_signature(
    public_key_b64: str, signature_b64: str, tid: str, last_seq: int, last_hash: str
) -> bool:
    """True when ``signature_b64`` signs '{tid}:{last_seq}:{last_hash}' under the key."""
    try:
        key = load_public_key(public_key_b64)
        sig = base64.b64decode(signature_b64, validate=True)
        key.verify(sig, signing_message(tid, last_seq, last_hash))
    except (WireError, binascii.Error, ValueError, InvalidSignature, UnicodeEncodeError):
        return False
    return True
