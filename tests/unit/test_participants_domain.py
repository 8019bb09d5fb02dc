from participants.domain import Role, normalize_email, role_of


def test_staff_are_admins_everyone_else_participants():
    assert role_of(is_staff=True) is Role.ADMIN
    assert role_of(is_staff=False) is Role.PARTICIPANT
    assert Role.ADMIN == "admin" and Role.PARTICIPANT == "participant"


def test_emails_compare_without_case_or_spaces():
    assert normalize_email("  Ann.Lee@Example.COM ") == "ann.lee@example.com"
