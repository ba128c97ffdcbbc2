"""The built-in PII engine: each type found where it is, and not where it only looks like it."""

from __future__ import annotations

import pytest

from fastagentic_gateway.hooks.pii import RegexDetector, iban_valid, luhn_valid, ssn_valid

DETECTOR = RegexDetector()


def found(text: str, least: float = 0.5) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in DETECTOR.detect(text) if f.score >= least]


# --- checks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["4111111111111111", "5500005555555559", "378282246310005", "6011000990139424"]
)
def test_luhn_accepts_valid_card_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234567812345678", "378282246310006"])
def test_luhn_refuses_mistyped_card_numbers(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    "iban",
    ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606", "NO9386011117947"],
)
def test_iban_check_accepts_valid_ibans(iban: str) -> None:
    assert iban_valid(iban)


@pytest.mark.parametrize(
    "iban",
    ["DE89370400440532013001", "GB82WEST1234569876543", "ZZ89370400440532013000", "DE8937040044053201300"],
    ids=["mod97", "length", "country", "short"],
)
def test_iban_check_refuses_bad_checksum_length_or_country(iban: str) -> None:
    assert not iban_valid(iban)


@pytest.mark.parametrize(
    "ssn", ["000123456", "666123456", "900123456", "999123456", "123001234", "123450000", "078051120"]
)
def test_ssn_check_refuses_invalid_ranges(ssn: str) -> None:
    assert not ssn_valid(ssn)


def test_ssn_check_accepts_a_valid_number() -> None:
    assert ssn_valid("536221234")


# --- each type found ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.roe+news@mail.example.co.uk today", ("email", "jane.roe+news@mail.example.co.uk")),
        ("call +1 415-555-2671 now", ("phone", "+1 415-555-2671")),
        ("call +4915123456789.", ("phone", "+4915123456789")),
        ("office (555) 123-4567", ("phone", "(555) 123-4567")),
        ("london 020 7946 0958", ("phone", "020 7946 0958")),
        ("paris 06 12 34 56 78", ("phone", "06 12 34 56 78")),
        ("card 4111 1111 1111 1111 exp", ("credit_card", "4111 1111 1111 1111")),
        ("amex 3782-822463-10005", ("credit_card", "3782-822463-10005")),
        ("pay DE89 3704 0044 0532 0130 00 now", ("iban", "DE89 3704 0044 0532 0130 00")),
        ("iban GB82WEST12345698765432", ("iban", "GB82WEST12345698765432")),
        ("ssn 536-22-1234 on file", ("ssn", "536-22-1234")),
        ("from 203.0.113.9, twice", ("ipv4", "203.0.113.9")),
        ("from 2001:db8:85a3::8a2e:370:7334 ok", ("ipv6", "2001:db8:85a3::8a2e:370:7334")),
        ("mapped ::ffff:198.51.100.7 ok", ("ipv6", "::ffff:198.51.100.7")),
        (
            "key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
            ("secret", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
        ),
        ("gh ghp_" + "A1b2C3d4" * 4 + "E5f6 end", ("secret", "ghp_" + "A1b2C3d4" * 4 + "E5f6")),
        ("aws AKIAIOSFODNN7EXAMPLE", ("secret", "AKIAIOSFODNN7EXAMPLE")),
        ("slack xoxb-123456789012-abcdefABCDEF", ("secret", "xoxb-123456789012-abcdefABCDEF")),
        ("ours fa_key_0123456789abcdef_" + "Zx9" * 10, ("secret", "fa_key_0123456789abcdef_" + "Zx9" * 10)),
        (
            "bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            (
                "secret",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            ),
        ),
        ("token Zk3mQ9xV2pL7wR4tY8uB1nC6 here", ("secret", "Zk3mQ9xV2pL7wR4tY8uB1nC6")),
    ],
)
def test_each_type_is_found(text: str, expected: tuple[str, str]) -> None:
    assert found(text) == [expected]


# --- and not over-found ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "all zeros 0000 0000 0000 0000",
        "mixed separators 4111-1111 1111 1111",
        "iban DE89 3704 0044 0532 0130 01 bad checksum",
        "ssn 000-12-3456 or 666-12-3456 or 912-34-5678",
        "released on 2024-01-15 and 15/01/2024",
        "version v1.2.3.4 and 1.2.3",
        "ip 999.1.1.1 is not one",
        "time 12:30:45 and mac 00:1A:2B:3C:4D:5E",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "identifier get_user_profile_by_id_v2 and internationalization",
        "image logo@2x.png and user@localhost",
        "population 10 000 000 and 1.234.567",
        "short 555-1234 and 12345",
        "rust std::vec::Vec and abc::def",
    ],
)
def test_lookalikes_are_not_found(text: str) -> None:
    assert found(text) == []


def test_a_failed_check_leaves_lower_types_a_chance() -> None:
    # 14 digits: a card candidate first, Luhn fails, then it is read as the phone number it is
    assert found("call 0049 30 1234 5678 now") == [("phone", "0049 30 1234 5678")]


def test_loopback_addresses_score_below_the_default_threshold() -> None:
    assert found("bind 127.0.0.1 and ::1") == []
    assert found("bind 127.0.0.1", least=0.2) == [("ipv4", "127.0.0.1")]


def test_several_types_in_one_string_in_order() -> None:
    text = "jane@example.com, +44 20 7946 0958, 4111111111111111, 203.0.113.9"
    assert [kind for kind, _ in found(text)] == ["email", "phone", "credit_card", "ipv4"]


def test_types_can_be_turned_off() -> None:
    detector = RegexDetector(["email"])
    assert [f.type for f in detector.detect("jane@example.com 4111111111111111")] == ["email"]


def test_unknown_types_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown PII types"):
        RegexDetector(["email", "passport"])
