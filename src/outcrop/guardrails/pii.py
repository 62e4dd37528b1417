"""Detectors for the sensitive-information (PII) entity types a guardrail can block or mask.

Every one of Bedrock's 31 `GuardrailPiiEntityType`s has a detector here; each is a documented
rule, not a statistical model (docs/guardrails.md lists them). Three kinds of rule:

- **Format + checksum**: the number's published structure and its check digit, where it has one
  (credit and debit cards: 13-19 digits and Luhn; Canadian SIN: Luhn; IBAN: ISO 13616 mod 97;
  US routing numbers: the ABA checksum; VINs: ISO 3779 check digit; UK NHS numbers: mod 11;
  SSNs: the SSA's never-issued area, group and serial numbers are excluded).
- **Format alone**, for values whose shape is distinctive (e-mail, URL, IPv4/IPv6, MAC,
  AWS access key IDs, ITINs, UK National Insurance numbers, phone numbers).
- **Format + context**: values that are just digits or short codes are reported only when a
  keyword names them nearby ("passport", "routing number", "PIN", "password", ...), as a person
  writing them would; the reported match is the value, not the keyword.

NAME recognises a given name from `data/first_names.txt` (plus following capitalised surnames)
when it is not merely a capitalised word starting a sentence, and names after "my name is",
"Mr."/"Ms."/"Dr.". ADDRESS recognises street addresses ("100 Main Street, Anytown, USA",
"Suite #12, Building 123") and the place names in `data/places.txt` (countries, US states,
large cities), as Bedrock reports "Italy" or "Tokyo" as ADDRESS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from outcrop.guardrails.lists import wordlist

PII_TYPES: tuple[str, ...] = (
    "ADDRESS",
    "AGE",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "CA_HEALTH_NUMBER",
    "CA_SOCIAL_INSURANCE_NUMBER",
    "CREDIT_DEBIT_CARD_CVV",
    "CREDIT_DEBIT_CARD_EXPIRY",
    "CREDIT_DEBIT_CARD_NUMBER",
    "DRIVER_ID",
    "EMAIL",
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
    "IP_ADDRESS",
    "LICENSE_PLATE",
    "MAC_ADDRESS",
    "NAME",
    "PASSWORD",
    "PHONE",
    "PIN",
    "SWIFT_CODE",
    "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
    "UK_NATIONAL_INSURANCE_NUMBER",
    "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER",
    "URL",
    "USERNAME",
    "US_BANK_ACCOUNT_NUMBER",
    "US_BANK_ROUTING_NUMBER",
    "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
    "US_PASSPORT_NUMBER",
    "US_SOCIAL_SECURITY_NUMBER",
    "VEHICLE_IDENTIFICATION_NUMBER",
)


@dataclass(frozen=True, slots=True)
class Match:
    """A detected value: its span in the text and the matched text."""

    start: int
    end: int
    text: str


Detector = Callable[[str], list[Match]]


def detect(entity_type: str, text: str) -> list[Match]:
    """Every occurrence of `entity_type` in `text`, in order."""
    return DETECTORS[entity_type](text)


# -- helpers -----------------------------------------------------------------------------------


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn_valid(number: str) -> bool:
    """The Luhn (mod 10) check over the digits of `number`."""
    digits = [int(c) for c in _digits(number)]
    if not digits:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    numeric = "".join(str(int(c, 36)) for c in moved)
    return int(numeric) % 97 == 1


def aba_valid(number: str) -> bool:
    """The ABA routing-number checksum: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 mod 10."""
    d = [int(c) for c in number]
    if len(d) != 9:
        return False
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


_VIN_VALUES = {
    **{str(n): n for n in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_check_digit_valid(vin: str) -> bool:
    """ISO 3779 / 49 CFR 565 check digit (position 9) of a 17-character VIN."""
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True))
    expected = total % 11
    return vin[8] == ("X" if expected == 10 else str(expected))


def nhs_valid(number: str) -> bool:
    """The NHS number's mod 11 check digit."""
    d = [int(c) for c in _digits(number)]
    if len(d) != 10:
        return False
    check = 11 - sum(x * w for x, w in zip(d[:9], range(10, 1, -1), strict=True)) % 11
    if check == 11:
        check = 0
    return check != 10 and check == d[9]


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """Numbers the SSA never issues: area 000, 666 or 900-999, group 00, serial 0000."""
    return (
        area not in ("000", "666")
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def _regex(pattern: str, flags: int = 0, group: int = 0) -> Detector:
    compiled = re.compile(pattern, flags)

    def find(text: str) -> list[Match]:
        return [
            Match(m.start(group), m.end(group), m.group(group)) for m in compiled.finditer(text)
        ]

    return find


def _with_context(
    keywords: str,
    value: str,
    *,
    flags: int = re.IGNORECASE,
    check: Callable[[str], bool] | None = None,
    gap: str = r"\W{0,3}",
) -> Detector:
    """`value` reported when preceded (within a few words) by one of `keywords`."""
    compiled = re.compile(
        rf"(?:{keywords})\b(?:{gap}(?:is|are|was|of|number|no|num|code|#|:)){{0,3}}{gap}"
        rf"(?P<value>{value})",
        flags,
    )

    def find(text: str) -> list[Match]:
        out = []
        for m in compiled.finditer(text):
            found = m.group("value")
            if check is None or check(found):
                out.append(Match(m.start("value"), m.end("value"), found))
        return out

    return find


def _any(*detectors: Detector) -> Detector:
    def find(text: str) -> list[Match]:
        return _dedupe([m for d in detectors for m in d(text)])

    return find


def _dedupe(matches: list[Match]) -> list[Match]:
    """Matches in order, longest first at a position, without overlaps."""
    kept: list[Match] = []
    for m in sorted(matches, key=lambda m: (m.start, -(m.end - m.start))):
        if kept and m.start < kept[-1].end:
            continue
        kept.append(m)
    return kept


# -- the detectors -----------------------------------------------------------------------------

_EMAIL = _regex(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")

_US_PHONE = re.compile(
    r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\w)"
)
_INTL_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?)(?:[\s.-]?\d{2,4}){2,5}(?!\w)"
)


def _phone(text: str) -> list[Match]:
    found = []
    for pattern in (_US_PHONE, _INTL_PHONE):
        for m in pattern.finditer(text):
            if 10 <= len(_digits(m.group())) <= 15:
                found.append(Match(m.start(), m.end(), m.group()))
    return _dedupe(found)


_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
_SSN_CONTEXT = re.compile(
    r"(?:social security|\bSSN)\b(?:\W{0,3}(?:is|number|no|#|:)){0,3}\W{0,3}"
    r"(\d{3})(\d{2})(\d{4})\b",
    re.IGNORECASE,
)


def _ssn(text: str) -> list[Match]:
    found = [
        Match(m.start(), m.end(), m.group())
        for m in _SSN.finditer(text)
        if ssn_valid(m.group(1), m.group(3), m.group(4))
    ]
    found += [
        Match(m.start(1), m.end(3), m.group(1) + m.group(2) + m.group(3))
        for m in _SSN_CONTEXT.finditer(text)
        if ssn_valid(m.group(1), m.group(2), m.group(3))
    ]
    return _dedupe(found)


_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def _card(text: str) -> list[Match]:
    out = []
    for m in _CARD.finditer(text):
        digits = _digits(m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            out.append(Match(m.start(), m.end(), m.group()))
    return out


_CVV = _with_context(
    r"CVV2?|CVC2?|CID|security code|card verification (?:value|code)", r"\d{3,4}(?!\d)"
)

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_EXPIRY = _with_context(
    r"exp(?:iry|ires|iration)?(?: date)?|valid (?:thru|through|until)|good thru",
    rf"(?:0[1-9]|1[0-2])\s?/\s?(?:\d{{4}}|\d{{2}})(?!\d)|{_MONTHS}\.? \d{{4}}",
)

_PIN = _with_context(r"\bPIN(?: code| number)?|\bpin code|\bpin number", r"\d{4,6}(?!\d)")

_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")


def _iban(text: str) -> list[Match]:
    return [
        Match(m.start(), m.end(), m.group())
        for m in _IBAN_RE.finditer(text)
        if iban_valid(m.group())
    ]


_SWIFT = _with_context(r"SWIFT|BIC", r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\b", flags=0)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\d.])"
_IPV6 = (
    r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"
    r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}(?![\w:])"
    r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}:(?![\w:])"
)
_IP = _any(_regex(_IPV4), _regex(_IPV6))

_MAC = _regex(r"(?<![\w:-])[0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}(?![\w:-])")

_URL_SCHEME = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+", re.IGNORECASE)
_URL_BARE = re.compile(
    r"(?<![@\w.-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|org|net|io|gov|edu|co|uk|de|ai|"
    r"dev|app|info|biz|us|ca|eu|fr|jp|au)\b(?:/[^\s<>\"'`]*)?",
    re.IGNORECASE,
)


def _url(text: str) -> list[Match]:
    out = []
    for pattern in (_URL_SCHEME, _URL_BARE):
        for m in pattern.finditer(text):
            value = m.group().rstrip(".,;:!?)]}'\"")
            out.append(Match(m.start(), m.start() + len(value), value))
    return _dedupe(out)


_AWS_ACCESS_KEY = _regex(r"\b(?:AKIA|ASIA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA)[A-Z0-9]{16}\b")

_SECRET_RE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


def _aws_secret(text: str) -> list[Match]:
    out = []
    for m in _SECRET_RE.finditer(text):
        v = m.group()
        classes = (
            any(c.isupper() for c in v),
            any(c.islower() for c in v),
            any(c.isdigit() or c in "/+" for c in v),
        )
        if all(classes):
            out.append(Match(m.start(), m.end(), v))
    return out


_BANK_ACCOUNT = _with_context(
    r"(?:bank |checking |savings )?account|acct\.?|a/c", r"\d{8,17}(?!\d)"
)
_ROUTING = _with_context(r"routing|ABA|RTN", r"\d{9}(?!\d)", check=aba_valid)
_ITIN = _regex(r"(?<![\d-])9\d{2}[- ]?[78]\d[- ]?\d{4}(?![\d-])")
_PASSPORT = _with_context(
    r"passport", r"[A-Z0-9]{6,9}\b", check=lambda v: any(c.isdigit() for c in v)
)
_DRIVER_ID = _with_context(
    r"driver'?s? licen[cs]e|driving licen[cs]e|\bDL",
    r"[A-Z0-9][A-Z0-9-]{4,15}[A-Z0-9]\b",
    check=lambda v: any(c.isdigit() for c in v),
)
_PLATE = _with_context(
    r"licen[cs]e plate|plate|registration (?:number|plate)",
    r"[A-Z0-9]{2,4}[- ]?[A-Z0-9]{2,4}\b",
    check=lambda v: any(c.isdigit() for c in v) and any(c.isalpha() for c in v),
)

_VIN_RE = re.compile(r"\b[A-HJ-NPR-Z0-9]{17}\b")
_VIN_CONTEXT = re.compile(r"\bVIN\b|vehicle identification", re.IGNORECASE)


def _vin(text: str) -> list[Match]:
    out = []
    for m in _VIN_RE.finditer(text):
        v = m.group()
        if not (any(c.isdigit() for c in v) and any(c.isalpha() for c in v)):
            continue
        nearby = _VIN_CONTEXT.search(text, max(0, m.start() - 40), m.start())
        if vin_check_digit_valid(v) or nearby:
            out.append(Match(m.start(), m.end(), v))
    return out


_CA_SIN_RE = re.compile(r"(?<![\d-])\d{3}([- ])\d{3}\1\d{3}(?![\d-])")


_CA_SIN_NEAR_WORDS = _with_context(r"\bSIN|social insurance", r"\d{9}(?!\d)", check=luhn_valid)


def _ca_sin(text: str) -> list[Match]:
    found = [
        Match(m.start(), m.end(), m.group())
        for m in _CA_SIN_RE.finditer(text)
        if luhn_valid(m.group())
    ]
    found += _CA_SIN_NEAR_WORDS(text)
    return _dedupe(found)


_CA_HEALTH = _with_context(
    r"health (?:card|number|insurance number)|OHIP|MSP|RAMQ|health service number",
    r"\d{4}[- ]?\d{3}[- ]?\d{3}(?!\d)",
)
_NHS = _with_context(
    r"NHS|national health service", r"\d{3}[- ]?\d{3}[- ]?\d{4}(?!\d)", check=nhs_valid
)
_NINO = _regex(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][ -]?\d{2}[ -]?\d{2}[ -]?\d{2}"
    r"[ -]?[A-D]\b"
)
_UTR = _with_context(r"\bUTR|unique taxpayer reference|tax reference", r"\d{5} ?\d{5}(?!\d)")

_AGE = _any(
    _regex(r"\b(\d{1,3} (?:years?|yrs?))[- ]old\b", re.IGNORECASE, group=1),
    _with_context(
        r"\bage[ds]?|\bI am|\bI'm", r"\d{1,3}(?= years?\b|\b(?! ?%))", flags=re.IGNORECASE
    ),
)

_USERNAME = _any(
    _with_context(
        r"user ?name|login|user id|screen name|handle|nickname",
        r"@?[A-Za-z0-9][A-Za-z0-9._-]{2,31}",
    ),
    _regex(r"(?<![\w.@])@[A-Za-z0-9_]{3,30}\b"),
)
_PASSWORD = _with_context(
    r"password|passwd|pwd|passcode|pass phrase|passphrase",
    r"[^\s\"']{4,64}",
    gap=r"[\s:=]{0,3}",
)

_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Cir|Alley|Crescent)"
)
_STREET = _regex(
    rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[A-Z][a-z]+\.?\s+){{1,4}}{_STREET_SUFFIX}\b\.?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Unit|#)\.?\s*#?\w+)?"
    r"(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2})?(?:,\s*[A-Z]{2,3})?(?:\s+\d{5}(?:-\d{4})?)?"
)
_UNIT = _regex(r"\b(?:Suite|Apt|Apartment|Unit)\s*#?\d+\w*(?:,\s*Building\s*\d+\w*)?")


@cache
def _places_pattern() -> re.Pattern[str]:
    names = sorted(wordlist("places.txt"), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b")


def _address(text: str) -> list[Match]:
    places = [Match(m.start(), m.end(), m.group()) for m in _places_pattern().finditer(text)]
    return _dedupe(_STREET(text) + _UNIT(text) + places)


@cache
def _given_names() -> frozenset[str]:
    return frozenset(wordlist("first_names.txt"))


_CAPITALISED = re.compile(r"\b[A-Z][a-z]+(?:['-][A-Z][a-z]+)?\b")
_NAME_INTRO = re.compile(
    r"(?:\b(?i:my name is|I am called|call me)|\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?)\s+"
    r"(?P<name>[A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2})"
)
_ORG_OR_PLACE_WORDS = frozenset(
    {"Street", "Avenue", "Road", "Organization", "Inc", "Corp", "Company", "Foundation"}
)


def _name(text: str) -> list[Match]:
    known = _given_names()
    places = {m.text for m in _address(text)}
    found = [
        Match(m.start("name"), m.end("name"), m.group("name")) for m in _NAME_INTRO.finditer(text)
    ]
    words = list(_CAPITALISED.finditer(text))
    i = 0
    while i < len(words):
        w = words[i]
        if w.group() in known and w.group() not in places:
            end = i
            # Capitalised words right after a given name are its surnames.
            while (
                end + 1 < len(words)
                and text[words[end].end() : words[end + 1].start()] == " "
                and words[end + 1].group() not in _ORG_OR_PLACE_WORDS
            ):
                end += 1
            if (
                end + 1 < len(words)
                and words[end + 1].group() in _ORG_OR_PLACE_WORDS
                and (text[words[end].end() : words[end + 1].start()] == " ")
            ):
                i = end + 2  # "John Doe Organization", "Jane Doe Street": not a person's name
                continue
            sentence_start = _starts_sentence(text, w.start())
            if end > i or not sentence_start:
                found.append(Match(w.start(), words[end].end(), text[w.start() : words[end].end()]))
            i = end + 1
            continue
        i += 1
    return _dedupe(found)


def _starts_sentence(text: str, index: int) -> bool:
    before = text[:index].rstrip()
    return not before or before[-1] in ".!?:\n\"'"


DETECTORS: dict[str, Detector] = {
    "ADDRESS": _address,
    "AGE": _AGE,
    "AWS_ACCESS_KEY": _AWS_ACCESS_KEY,
    "AWS_SECRET_KEY": _aws_secret,
    "CA_HEALTH_NUMBER": _CA_HEALTH,
    "CA_SOCIAL_INSURANCE_NUMBER": _ca_sin,
    "CREDIT_DEBIT_CARD_CVV": _CVV,
    "CREDIT_DEBIT_CARD_EXPIRY": _EXPIRY,
    "CREDIT_DEBIT_CARD_NUMBER": _card,
    "DRIVER_ID": _DRIVER_ID,
    "EMAIL": _EMAIL,
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": _iban,
    "IP_ADDRESS": _IP,
    "LICENSE_PLATE": _PLATE,
    "MAC_ADDRESS": _MAC,
    "NAME": _name,
    "PASSWORD": _PASSWORD,
    "PHONE": _phone,
    "PIN": _PIN,
    "SWIFT_CODE": _SWIFT,
    "UK_NATIONAL_HEALTH_SERVICE_NUMBER": _NHS,
    "UK_NATIONAL_INSURANCE_NUMBER": _NINO,
    "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER": _UTR,
    "URL": _url,
    "USERNAME": _USERNAME,
    "US_BANK_ACCOUNT_NUMBER": _BANK_ACCOUNT,
    "US_BANK_ROUTING_NUMBER": _ROUTING,
    "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER": _ITIN,
    "US_PASSPORT_NUMBER": _PASSPORT,
    "US_SOCIAL_SECURITY_NUMBER": _ssn,
    "VEHICLE_IDENTIFICATION_NUMBER": _vin,
}
assert set(DETECTORS) == set(PII_TYPES)
