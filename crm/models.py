"""Import every model so that metadata, Alembic and the scoping hook see them all."""
from crm.auth.models import ApiToken, Role, User  # noqa: F401
from crm.core.models import (  # noqa: F401
    Area, AuditEntry, CreditProduct, DeclineReason, HolidayOverride, Industry, IndustrySection, Street,
    VisitMode, WillingnessLevel,
)
from crm.credit.models import (  # noqa: F401
    CreditApplication, IpAsset, Pledge, SecuritisationPool, StageChange, Valuation,
)
from crm.events.models import Event, ExportColumnSet, Registration  # noqa: F401
from crm.firms.models import Contact, Firm, FirmAccount  # noqa: F401
from crm.orgs.models import Campaign, Organisation, Target  # noqa: F401
from crm.visits.models import FollowUp, Visit  # noqa: F401
