"""Two views of the one account model, for the Django admin: participants and administrators are
separate entries there (participants/admin.py), each with its own list, form and page. Proxies: no
table of their own, the same rows as `User`, told apart by `is_staff` (the role)."""

from __future__ import annotations

from participants.models import User


class Participant(User):
    class Meta:
        proxy = True
        verbose_name = "participant"
        verbose_name_plural = "participants"


class Administrator(User):
    class Meta:
        proxy = True
        verbose_name = "administrator"
        verbose_name_plural = "administrators"


# Model signals name the class a row was saved or deleted through, so a receiver that must hear
# of every account listens to each of these: the account model and every proxy of it.
ACCOUNT_SENDERS: tuple[type[User], ...] = (User, Participant, Administrator)
