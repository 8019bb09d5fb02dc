from django.db.models import QuerySet

from reports.models import Report


def reports() -> QuerySet[Report]:
    return Report.objects.all()
