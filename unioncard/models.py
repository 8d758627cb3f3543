"""Every part's tables, imported in one place so Alembic and tests see the whole schema."""

from unioncard.orm import Base
from unioncard.checkin import models as checkin_models  # noqa: F401
from unioncard.hsm import models as hsm_models  # noqa: F401
from unioncard.issuer import models as issuer_models  # noqa: F401
from unioncard.jobs import models as jobs_models  # noqa: F401
from unioncard.members import models as members_models  # noqa: F401
from unioncard.messaging import models as messaging_models  # noqa: F401
from unioncard.migration import models as migration_models  # noqa: F401
from unioncard.partner import models as partner_models  # noqa: F401
from unioncard.personalization import models as personalization_models  # noqa: F401
from unioncard.registry import models as registry_models  # noqa: F401
from unioncard.statistics import models as statistics_models  # noqa: F401

metadata = Base.metadata
from unioncard.issuer import handlers as issuer_handlers  # noqa: F401,E402
from unioncard.messaging import handlers as messaging_handlers  # noqa: F401,E402
from unioncard.registry import jobs as registry_jobs  # noqa: F401,E402
from unioncard.messaging import mailings as messaging_jobs  # noqa: F401,E402
from unioncard.personalization import jobs as personalization_jobs  # noqa: F401,E402
