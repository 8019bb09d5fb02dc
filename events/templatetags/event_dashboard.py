"""`{% admin_dashboard as dash %}`: the admin index's figures (events.dashboard), computed when the
index renders. A tag rather than a custom AdminSite, so the project's `admin.site` stays the one
every app registers with."""

from __future__ import annotations

from django import template

from events import dashboard

register = template.Library()


@register.simple_tag
def admin_dashboard() -> dashboard.Dashboard:
    return dashboard.dashboard()
