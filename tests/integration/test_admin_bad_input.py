"""Malformed input to the admin is answered as such, never with a 500, on every registered admin.

Hand-made URLs and forms: a NUL character, a selected id that cannot be one, a filter on a part of
a date no date has (config.middleware.AdminInputMiddleware).
"""

import pytest
from django.contrib import admin
from django.db import models
from django.test import Client

from events.admin import EventAdmin
from events.models import Event
from participants.models import User
from tests.factories import AdminFactory, EnrollmentFactory, EventFactory, WaitlistEntryFactory

pytestmark = pytest.mark.django_db(transaction=True)

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
IDS = [model._meta.label for model, _ in REGISTERED]
# The lists with filters: every one but the accounts' own, which sends its visitors to the
# participants' list (participants.admin.UserAdmin).
DATED_LISTS = [
    (model, model_admin)
    for model, model_admin in REGISTERED
    if model is not User and any(isinstance(field, models.DateField) for field in model._meta.concrete_fields)
]


def changelist(model: type[models.Model]) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


@pytest.fixture
def browser():
    client = Client(raise_request_exception=False)
    client.force_login(AdminFactory())
    event = EventFactory()
    EnrollmentFactory(event=event)
    WaitlistEntryFactory(event=event)
    return client


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_a_nul_character_in_any_parameter_is_a_bad_request(browser, model, model_admin):
    assert browser.get(changelist(model), {"q": "a\x00b"}).status_code == 400
    assert browser.get(changelist(model), {"pk__exact\x00": "1"}).status_code == 400
    assert (
        browser.post(
            changelist(model), {"action": "delete_selected", "index": "0", "note": "\x00"}
        ).status_code
        == 400
    )
    assert browser.get(f"{changelist(model)}add/", {"_changelist_filters": "\x00"}).status_code == 400


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
@pytest.mark.parametrize("selected", ["abc", "", "1,2", "99999999999999999999"])
def test_a_selection_that_cannot_be_an_id_is_a_bad_request_and_changes_nothing(
    browser, model, model_admin, selected
):
    before = model._default_manager.count()
    request = browser.get(changelist(model)).wsgi_request
    for action in model_admin.get_actions(request) or ["delete_selected"]:
        answer = browser.post(
            changelist(model),
            {"action": action, "index": "0", "_selected_action": ["1", selected], "post": "yes"},
        )
        assert answer.status_code == 400, action
    assert model._default_manager.count() == before


@pytest.mark.parametrize(
    ("model", "model_admin"), DATED_LISTS, ids=[model._meta.label for model, _ in DATED_LISTS]
)
@pytest.mark.parametrize("year", ["0", "-1", "9999", "99999999999999999999"])
def test_a_year_no_date_has_gives_the_list_without_its_filters_and_says_so(browser, model, model_admin, year):
    dated = [field.name for field in model._meta.concrete_fields if isinstance(field, models.DateField)]
    for field in dated:
        answer = browser.get(changelist(model), {f"{field}__year": year, "o": "1"})
        assert (answer.status_code, answer["Location"]) == (302, f"{changelist(model)}?e=1"), field
        page = browser.get(answer["Location"])
        assert page.status_code == 200, field
        said = page.content.decode()
        assert "could not be shown with" in said and f"{field}__year" in said, field


@pytest.mark.parametrize("part", ["month", "day"])
def test_a_date_hierarchys_month_or_day_no_date_has_is_refused_as_well(browser, part):
    """With a year, Django's date hierarchy reads the month and day with datetime(), and let the
    OverflowError of a twenty-digit one through."""
    answer = browser.get(changelist(Event), {"date__year": "2030", f"date__{part}": "99999999999999999999"})
    assert (answer.status_code, answer["Location"]) == (302, f"{changelist(Event)}?e=1")
    assert browser.get(changelist(Event), {"date__year": "2030", f"date__{part}": "7"}).status_code == 200


def test_a_page_past_the_end_of_a_filtered_list_says_so_too(browser, monkeypatch):
    """Django sends it to ?e=1 itself, without a word: the admin saw the whole list as if filtered."""
    monkeypatch.setattr(EventAdmin, "list_per_page", 1)
    EventFactory()  # two pages of one
    answer = browser.get(changelist(Event), {"admission__exact": "direct", "p": "99"})
    assert (answer.status_code, answer["Location"]) == (302, f"{changelist(Event)}?e=1")
    said = browser.get(answer["Location"]).content.decode()
    assert "could not be shown with admission__exact, p" in said


def test_a_valid_selection_still_acts(browser):
    events = [EventFactory(), EventFactory()]
    answer = browser.post(
        changelist(Event),
        {
            "action": "delete_selected",
            "index": "0",
            "_selected_action": [str(e.pk) for e in events],
            "post": "yes",
        },
    )
    assert answer.status_code == 302
    assert not Event.objects.filter(pk__in=[e.pk for e in events]).exists()


def test_a_fault_of_the_admins_own_code_stays_a_server_error(browser, monkeypatch):
    """Nothing here catches errors: a list whose own code fails is a fault, and answers 500."""

    def broken(self, request):
        raise ValueError("a fault in the code")

    monkeypatch.setattr(EventAdmin, "get_queryset", broken)
    assert browser.get(changelist(Event), {"title": "Town hall"}).status_code == 500
    assert browser.get(changelist(Event)).status_code == 500
