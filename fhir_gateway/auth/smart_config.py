"""What this server tells SMART clients about its authorization: the
``.well-known/smart-configuration`` document and the CapabilityStatement's ``rest.security``.

Both are derived from the same settings so they cannot disagree about the token endpoint.
"""

from __future__ import annotations

from typing import Any

from fhir_gateway.auth.authz_server import ASSERTION_ALGORITHMS
from fhir_gateway.settings import Settings

SCOPES_SUPPORTED = [
    "system/*.cruds",
    "system/*.rs",
    "user/*.cruds",
    "user/*.rs",
    "patient/*.rs",
    "patient/*.cruds",
    "system/AuditEvent.rs",
    "system/RiskAssessment.rs",
    "patient/RiskAssessment.rs",
]
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def issuer(settings: Settings) -> str:
    return settings.base_url() + "/auth"


def token_endpoint(settings: Settings) -> str:
    return settings.base_url() + "/auth/token"


def jwks_uri(settings: Settings) -> str:
    return settings.base_url() + "/auth/jwks"


def smart_configuration(settings: Settings) -> dict[str, Any]:
    return {
        "issuer": issuer(settings),
        "jwks_uri": jwks_uri(settings),
        "token_endpoint": token_endpoint(settings),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["token"],
        "capabilities": [
            "client-confidential-asymmetric",
            "permission-v1",
            "permission-v2",
            "permission-patient",
            "permission-user",
        ],
        "code_challenge_methods_supported": ["S256"],
    }


def capability_security(settings: Settings) -> dict[str, Any]:
    return {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [{"url": "token", "valueUri": token_endpoint(settings)}],
            }
        ],
        "description": "Bearer access tokens (SMART v1/v2 scopes) or an institution API key.",
    }
