"""Closed code lists of ICAO Doc 9303 for the machine-readable zone.

A misread first MRZ line carries no check digit (ICAO 9303-4/5/6 cover only the number,
the dates and the optional data), so the document code and the three-letter codes of the
issuing state and the nationality are checked against the lists 9303 fixes instead: a
read outside them is not a read.
"""

from __future__ import annotations

# ICAO 9303-3 §5 "Codes for nationality, place of birth or location of issuing State or
# organization": the alpha-3 codes of ISO 3166-1 (all 249, as published in Debian's
# iso-codes 4.15, which tests/test_iddoc_icao.py compares against) ...
ISO_3166_ALPHA3 = frozenset(
    """
    ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE BDI BEL BEN BES
    BFA BGD BGR BHR BHS BIH BLM BLR BLZ BMU BOL BRA BRB BRN BTN BVT BWA CAF CAN CCK CHE
    CHL CHN CIV CMR COD COG COK COL COM CPV CRI CUB CUW CXR CYM CYP CZE DEU DJI DMA DNK
    DOM DZA ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM GAB GBR GEO GGY GHA GIB
    GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM GUY HKG HMD HND HRV HTI HUN IDN IMN IND
    IOT IRL IRN IRQ ISL ISR ITA JAM JEY JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN
    LBR LBY LCA LIE LKA LSO LTU LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX MHL MKD MLI MLT
    MMR MNE MNG MNP MOZ MRT MSR MTQ MUS MWI MYS MYT NAM NCL NER NFK NGA NIC NIU NLD NOR
    NPL NRU NZL OMN PAK PAN PCN PER PHL PLW PNG POL PRI PRK PRT PRY PSE PYF QAT REU ROU
    RUS RWA SAU SDN SEN SGP SGS SHN SJM SLB SLE SLV SMR SOM SPM SRB SSD STP SUR SVK SVN
    SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON TTO TUN TUR TUV TWN TZA UGA
    UKR UMI URY USA UZB VAT VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF ZMB ZWE
    """.split()  # noqa: SIM905 - the list as ISO publishes it, one code per word
)

# ... plus the codes 9303-3 adds: Germany's single letter, the British nationality
# classes, the United Nations and the other organizations that issue travel documents,
# and the codes for persons without a nationality.  RKS: Kosovo, used on its passports
# (9303-3 lists it among the codes in use that are not ISO 3166-1).
ICAO_EXTRA = frozenset(
    {
        "D",  # Germany
        "GBD", "GBN", "GBO", "GBP", "GBS",  # British dependent territories citizen etc.
        "UNO", "UNA", "UNK",  # United Nations, its specialized agencies, UNMIK Kosovo
        "EUE",  # European Union
        "XBA", "XIM", "XCC", "XCE", "XCO", "XEC", "XPO", "XES", "XMP", "XOM", "XDC",
        "XXA", "XXB", "XXC", "XXX",  # stateless, refugee (1951), refugee (other), unspecified
        "RKS",
    }
)  # fmt: skip

STATES = ISO_3166_ALPHA3 | ICAO_EXTRA
# The fictional issuing state of every specimen in ICAO 9303 ("Utopia"): not a real
# document, so accepted only by callers that ask for specimens.
SPECIMEN_STATE = "UTO"

# ICAO 9303-4 §4.2.2 (TD3, passports): the first character is P, the second at the
# issuing State's discretion (a letter or the filler).  ICAO 9303-5 §4.2.2 / 9303-6
# §4.2.2 (TD1, TD2 official travel documents): the first character is A, C or I; the
# second is the issuer's choice except that V is never used, and C never after A except
# on a crew member certificate (which the form "AC" is).
# ICAO 9303-7 §4.2.2.1 (machine readable visas, formats A and B): the first character is
# V, the second at the issuing State's discretion.
FIRST_CHARS = {
    "TD3": frozenset("P"),
    "TD1": frozenset("ACI"),
    "TD2": frozenset("ACI"),
    "MRV-A": frozenset("V"),
    "MRV-B": frozenset("V"),
}
# the formats where a second character V is not allowed (it would read as a visa)
_NO_V_SECOND = frozenset({"TD1", "TD2"})


def document_code_ok(fmt: str, code: str) -> bool:
    """Whether the two-character document code ``code`` ("P<", "ID", "AC", "V<") is
    allowed on an MRZ of format ``fmt`` ("TD1", "TD2", "TD3", "MRV-A", "MRV-B")."""
    if len(code) != 2 or code[0] not in FIRST_CHARS.get(fmt, ()):
        return False
    second = code[1]
    if not (second == "<" or "A" <= second <= "Z"):
        return False
    return fmt not in _NO_V_SECOND or second != "V"


def state_ok(code: str) -> bool:
    """Whether a country field ("CHN", "D<<", "XXA") names a state or organization of
    ICAO 9303-3."""
    return code.rstrip("<") in STATES and len(code) == 3
