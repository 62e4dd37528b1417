"""The sensitive-information detectors: each PII type found where it is, not where it is not."""

from __future__ import annotations

import pytest

from outcrop.guardrails.pii import (
    DETECTORS,
    PII_TYPES,
    aba_valid,
    detect,
    iban_valid,
    luhn_valid,
    nhs_valid,
    vin_check_digit_valid,
)

# (type, text, what must be found, text where nothing of that type may be found)
CASES = [
    ("EMAIL", "write to mary.major@example.com today", ["mary.major@example.com"], "at 5 pm"),
    (
        "PHONE",
        "call (206) 555-0100 or +44 20 7946 0958",
        ["(206) 555-0100", "+44 20 7946 0958"],
        "order 12345 shipped",
    ),
    (
        "US_SOCIAL_SECURITY_NUMBER",
        "my SSN is 123-45-6789",
        ["123-45-6789"],
        "ids 000-12-3456 and 666-12-3456 and 123-00-4567 are never issued",
    ),
    (
        "CREDIT_DEBIT_CARD_NUMBER",
        "card 4111 1111 1111 1111 expires soon",
        ["4111 1111 1111 1111"],
        "card 4111 1111 1111 1112 fails the Luhn check",
    ),
    ("CREDIT_DEBIT_CARD_CVV", "the CVV: 123", ["123"], "I have 123 apples"),
    (
        "CREDIT_DEBIT_CARD_EXPIRY",
        "expires 01/27, exp Jan 2027",
        ["01/27", "Jan 2027"],
        "meet on 01/27",
    ),
    ("PIN", "my PIN is 4821", ["4821"], "spin 4821 times"),
    (
        "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        "IBAN GB82 WEST 1234 5698 7654 32",
        ["GB82 WEST 1234 5698 7654 32"],
        "GB82 WEST 1234 5698 7654 33",
    ),
    ("SWIFT_CODE", "SWIFT code DEUTDEFF500", ["DEUTDEFF500"], "BUSINESS is booming"),
    (
        "IP_ADDRESS",
        "server 198.51.100.7 and 2001:db8::1",
        ["198.51.100.7", "2001:db8::1"],
        "999.1.1.1 is not an address",
    ),
    ("MAC_ADDRESS", "nic 00:1A:2B:3C:4D:5E", ["00:1A:2B:3C:4D:5E"], "time 10:20:30"),
    (
        "URL",
        "see https://example.com/a?b=1. or www.example.org",
        ["https://example.com/a?b=1", "www.example.org"],
        "mail bob@example.com",
    ),
    ("AWS_ACCESS_KEY", "key AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPLE"], "AKIA is a prefix"),
    (
        "AWS_SECRET_KEY",
        "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
        "a" * 40,
    ),
    (
        "US_BANK_ACCOUNT_NUMBER",
        "account number 123456789012",
        ["123456789012"],
        "order number 123456789012",
    ),
    (
        "US_BANK_ROUTING_NUMBER",
        "routing number 021000021",
        ["021000021"],
        "routing number 021000022",
    ),
    ("US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER", "ITIN 912-78-1234", ["912-78-1234"], "912-68-1234"),
    ("US_PASSPORT_NUMBER", "passport number 123456789", ["123456789"], "ticket 123456789"),
    ("DRIVER_ID", "driver's license D1234567", ["D1234567"], "reference D1234567"),
    ("LICENSE_PLATE", "license plate 7ABC123", ["7ABC123"], "model 7ABC123"),
    (
        "VEHICLE_IDENTIFICATION_NUMBER",
        "VIN 1HGCM82633A004352",
        ["1HGCM82633A004352"],
        "1HGCM82633A004353",
    ),
    ("CA_SOCIAL_INSURANCE_NUMBER", "SIN 046-454-286", ["046-454-286"], "046-454-287"),
    ("CA_HEALTH_NUMBER", "health card 1234-567-890", ["1234-567-890"], "invoice 1234-567-890"),
    (
        "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
        "NHS number 943 476 5919",
        ["943 476 5919"],
        "NHS number 943 476 5918",
    ),
    ("UK_NATIONAL_INSURANCE_NUMBER", "NI number AB 12 34 56 C", ["AB 12 34 56 C"], "QQ 12 34 56 C"),
    ("UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER", "UTR 12345 67890", ["12345 67890"], "call 12345 67890"),
    ("AGE", "I am 40 years old", ["40 years"], "40 years ago"),
    (
        "NAME",
        "Yesterday John Smith met Mary. My name is Zed Quux.",
        ["John Smith", "Mary", "Zed Quux"],
        "Mark the box. The John Doe Organization.",
    ),
    (
        "ADDRESS",
        "I live at 100 Main Street, Anytown, USA. Suite #12, Building 123. Tokyo is big",
        ["100 Main Street, Anytown, USA", "Suite #12, Building 123", "Tokyo"],
        "main street food",
    ),
    ("USERNAME", "username: jdoe_88, follow @outcrop", ["jdoe_88", "@outcrop"], "a user"),
    ("PASSWORD", "password: *very20special#pass*", ["*very20special#pass*"], "my pass"),
]


def test_every_entity_type_has_a_detector_and_a_case() -> None:
    assert set(DETECTORS) == set(PII_TYPES)
    assert {c[0] for c in CASES} == set(PII_TYPES)
    assert len(PII_TYPES) == 31


@pytest.mark.parametrize(("kind", "text", "expected", "negative"), CASES, ids=[c[0] for c in CASES])
def test_detector(kind: str, text: str, expected: list[str], negative: str) -> None:
    found = detect(kind, text)
    assert [m.text for m in found] == expected
    for m in found:
        assert text[m.start : m.end] == m.text
    assert detect(kind, negative) == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert aba_valid("021000021") and not aba_valid("021000022")
    assert vin_check_digit_valid("1HGCM82633A004352")
    assert not vin_check_digit_valid("1HGCM82643A004352")
    assert nhs_valid("9434765919") and not nhs_valid("9434765918")
