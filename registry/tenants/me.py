"""Who the caller is: the key's tenant, name and scopes (any scope)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from registry.api.deps import ReadDep, SessionDep, granted_scopes
from registry.tenants.models import ApiKey, Tenant

router = APIRouter(prefix="/v1/me", tags=["keys"])


class MeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "01J9ZY8W6U4S2Q0O8M6K4I2G0E",
                    "tenant_name": "acme",
                    "key_id": "01J9ZZ0K3Y5W7V9T1R3P5N7M9K",
                    "key_name": "ci-trainer",
                    "scopes": ["train"],
                    "granted": ["read", "train"],
                }
            ]
        }
    )

    tenant_id: str
    tenant_name: str
    key_id: str
    key_name: str
    scopes: list[str]
    # Every scope the key's scopes imply (an admin key may also train and read).
    granted: list[str]


@router.get("", response_model=MeOut, summary="The calling key: its tenant and scopes")
def whoami(principal: ReadDep, session: SessionDep) -> MeOut:
    """The tenant the key belongs to, the key's name and scopes, and what they grant: what a
    console or an inference server shows or checks before acting."""
    tenant = session.get(Tenant, principal.tenant_id)
    key = session.get(ApiKey, principal.key_id)
    return MeOut(
        tenant_id=principal.tenant_id,
        tenant_name=tenant.name if tenant else "",
        key_id=principal.key_id,
        key_name=key.name if key else "",
        scopes=list(principal.scopes),
        granted=sorted(granted_scopes(principal.scopes)),
    )
