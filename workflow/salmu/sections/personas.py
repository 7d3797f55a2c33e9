"""Settings of the persona generator (config section ``personas``, flags of ``salmu personas``)."""

from __future__ import annotations

from dataclasses import dataclass

from salmu.settings import Settings, setting


@dataclass(frozen=True, kw_only=True)
class PersonasSettings(Settings):
    section = "personas"

    n_identities: int = setting(40, "fictitious identities generated with Faker (paper: 1,000)")
    locales: list[str] = setting(
        [
            "en_US",
            "en_GB",
            "fr_FR",
            "de_DE",
            "it_IT",
            "es_ES",
            "pt_BR",
            "nl_NL",
            "pl_PL",
            "sv_SE",
            "tr_TR",
            "id_ID",
        ],  # fmt: skip
        "Faker locales, drawn round-robin (paper: about 65 countries)",
    )
    locales_table: str = setting(
        "resources/locales.yaml", "table of locale -> country code and Latin-script name method"
    )
    email_domains: list[str] = setting(
        ["example.com", "example.org", "example.net"],
        "e-mail domains: RFC 2606 reserved, so no address can be a real person's",
    )
