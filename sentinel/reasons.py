"""The fixed set of reason codes a Decision can carry, with bilingual messages.

Every refusal has exactly one reason code.  Codes are stable strings: they are
journaled, exported, reported on and shown to staff, so never rename one; add new
ones at the end of their group.  ``docs/reason-codes.md`` is generated from this
table (``sentinel reasons --markdown``).
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    # --- admissions -------------------------------------------------------
    ADMIT = "ADMIT"  # the credential satisfies the venue rules
    ADMIT_STALE_DATA = "ADMIT_STALE_DATA"  # admitted, but trust data is past its max age
    OVERRIDE = "OVERRIDE"  # staff opened the gate by hand
    EXIT = "EXIT"  # request-to-exit button
    # --- reading ----------------------------------------------------------
    UNREADABLE = "UNREADABLE"  # a code was seen but is not a credential we know
    MALFORMED = "MALFORMED"  # prefix / base45 / zlib / CBOR / COSE structure broken
    TOO_LARGE = "TOO_LARGE"  # decompression or nesting exceeded its bound
    SCHEMA_INVALID = "SCHEMA_INVALID"  # a field the decision needs is missing or malformed
    # --- signature and signer --------------------------------------------
    NO_TRUST_DATA = "NO_TRUST_DATA"  # no trust list loaded at all
    UNKNOWN_SIGNER = "UNKNOWN_SIGNER"  # kid not in the trust list
    BAD_SIGNATURE = "BAD_SIGNATURE"  # signature does not verify
    SIGNER_NOT_VALID = "SIGNER_NOT_VALID"  # signer certificate outside its validity
    SIGNER_NOT_ALLOWED = "SIGNER_NOT_ALLOWED"  # signer's key usage excludes this type
    # --- validity -----------------------------------------------------------
    EXPIRED = "EXPIRED"  # credential past its expiry
    NOT_YET_VALID = "NOT_YET_VALID"  # issued in the future (beyond clock skew)
    REVOKED = "REVOKED"  # on the revocation list
    DATA_STALE = "DATA_STALE"  # trust data older than the configured maximum age
    # --- venue rules ----------------------------------------------------------
    TYPE_NOT_ACCEPTED = "TYPE_NOT_ACCEPTED"  # certificate type not accepted by this venue
    TEST_TOO_OLD = "TEST_TOO_OLD"
    TEST_POSITIVE = "TEST_POSITIVE"
    TEST_TYPE_NOT_ACCEPTED = "TEST_TYPE_NOT_ACCEPTED"
    VACCINATION_INCOMPLETE = "VACCINATION_INCOMPLETE"
    VACCINATION_TOO_RECENT = "VACCINATION_TOO_RECENT"
    VACCINATION_EXPIRED = "VACCINATION_EXPIRED"
    BOOSTER_REQUIRED = "BOOSTER_REQUIRED"
    RECOVERY_NOT_VALID = "RECOVERY_NOT_VALID"
    RULE_FAILED = "RULE_FAILED"  # a CertLogic business rule failed
    SECOND_CREDENTIAL_REQUIRED = "SECOND_CREDENTIAL_REQUIRED"  # e.g. 2G+: show a test too
    # --- ID documents and status set -----------------------------------------
    ID_UNREADABLE = "ID_UNREADABLE"  # document seen but check digits failed
    STATUS_UNKNOWN = "STATUS_UNKNOWN"  # document not in the status set
    STATUS_RED = "STATUS_RED"
    STATUS_YELLOW = "STATUS_YELLOW"
    STATUS_EXPIRED = "STATUS_EXPIRED"  # status entry past its valid-until
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"  # certificate and ID document disagree
    ID_REQUIRED = "ID_REQUIRED"  # identity match: show the ID document now
    DOCUMENT_EXPIRED = "DOCUMENT_EXPIRED"  # ID document past the expiry date it carries
    # --- health codes ----------------------------------------------------------
    CODE_EXPIRED = "CODE_EXPIRED"  # short-lived code past its expiry (a screenshot)
    CODE_NOT_YET_VALID = "CODE_NOT_YET_VALID"
    CODE_REPLAY = "CODE_REPLAY"  # code already used by another presentation
    CODE_RED = "CODE_RED"
    CODE_YELLOW = "CODE_YELLOW"
    CODE_STATUS_CHANGED = "CODE_STATUS_CHANGED"  # status set has newer, non-green status
    # --- device events (not decisions on a visitor; journaled with decision="event") ----
    CAMERA_FAULT = "CAMERA_FAULT"  # camera vanished or gives black frames
    CAMERA_RECOVERED = "CAMERA_RECOVERED"
    DOOR_HELD_OPEN = "DOOR_HELD_OPEN"
    DOOR_FORCED = "DOOR_FORCED"
    DOOR_CLOSED = "DOOR_CLOSED"
    OUTBOX_FULL = "OUTBOX_FULL"  # fleet export queue full: events kept in the journal only
    DISK_FULL = "DISK_FULL"  # journal writes fail for lack of space: the gate keeps working
    DISK_RECOVERED = "DISK_RECOVERED"  # journal writes work again


ADMIT_CODES = frozenset(
    {ReasonCode.ADMIT, ReasonCode.ADMIT_STALE_DATA, ReasonCode.OVERRIDE, ReasonCode.EXIT}
)

# (English, Chinese) for each code; shown on the kiosk and in reports.
MESSAGES: dict[ReasonCode, tuple[str, str]] = {
    ReasonCode.ADMIT: ("Welcome, please enter", "验证通过，请进入"),
    ReasonCode.ADMIT_STALE_DATA: ("Admitted (offline data is old)", "验证通过（离线数据已过期）"),
    ReasonCode.OVERRIDE: ("Opened by staff", "工作人员放行"),
    ReasonCode.EXIT: ("Exit", "出口放行"),
    ReasonCode.UNREADABLE: ("Code not recognised", "无法识别此二维码"),
    ReasonCode.MALFORMED: ("Certificate is damaged", "证书数据损坏"),
    ReasonCode.TOO_LARGE: ("Certificate is too large", "证书数据过大"),
    ReasonCode.SCHEMA_INVALID: ("Certificate content is invalid", "证书内容无效"),
    ReasonCode.NO_TRUST_DATA: ("Device has no trust data", "设备缺少信任数据"),
    ReasonCode.UNKNOWN_SIGNER: ("Issuer not trusted", "签发机构不受信任"),
    ReasonCode.BAD_SIGNATURE: ("Signature invalid", "签名无效"),
    ReasonCode.SIGNER_NOT_VALID: ("Issuer key not valid", "签发密钥已失效"),
    ReasonCode.SIGNER_NOT_ALLOWED: ("Issuer not allowed for this type", "签发机构无权签发此类证书"),
    ReasonCode.EXPIRED: ("Certificate expired", "证书已过期"),
    ReasonCode.NOT_YET_VALID: ("Certificate not yet valid", "证书尚未生效"),
    ReasonCode.REVOKED: ("Certificate revoked", "证书已被撤销"),
    ReasonCode.DATA_STALE: ("Device data out of date", "设备数据已过期"),
    ReasonCode.TYPE_NOT_ACCEPTED: ("Certificate type not accepted here", "本场所不接受此类证书"),
    ReasonCode.TEST_TOO_OLD: ("Test result too old", "检测结果已超时"),
    ReasonCode.TEST_POSITIVE: ("Test result not negative", "检测结果非阴性"),
    ReasonCode.TEST_TYPE_NOT_ACCEPTED: ("Test type not accepted", "不接受此检测类型"),
    ReasonCode.VACCINATION_INCOMPLETE: ("Vaccination not complete", "疫苗接种未完成"),
    ReasonCode.VACCINATION_TOO_RECENT: ("Vaccination too recent", "疫苗接种时间过短"),
    ReasonCode.VACCINATION_EXPIRED: ("Vaccination no longer valid", "疫苗接种已失效"),
    ReasonCode.BOOSTER_REQUIRED: ("Booster required", "需要加强针"),
    ReasonCode.RECOVERY_NOT_VALID: ("Recovery certificate not valid now", "康复证明不在有效期内"),
    ReasonCode.RULE_FAILED: ("Entry rule not met", "不符合入场规则"),
    ReasonCode.SECOND_CREDENTIAL_REQUIRED: ("Please also show a test", "请同时出示检测证明"),
    ReasonCode.ID_UNREADABLE: ("ID document unreadable, try again", "证件无法读取，请重试"),
    ReasonCode.STATUS_UNKNOWN: ("No status on record", "无状态记录"),
    ReasonCode.STATUS_RED: ("Status: red", "状态：红码"),
    ReasonCode.STATUS_YELLOW: ("Status: yellow", "状态：黄码"),
    ReasonCode.STATUS_EXPIRED: ("Status out of date", "状态已过期"),
    ReasonCode.IDENTITY_MISMATCH: ("Certificate does not match ID", "证书与证件不符"),
    ReasonCode.ID_REQUIRED: ("Please show your ID document", "请出示身份证件"),
    ReasonCode.DOCUMENT_EXPIRED: ("ID document expired", "证件已过期"),
    ReasonCode.CODE_EXPIRED: ("Code expired, refresh it", "健康码已过期，请刷新"),
    ReasonCode.CODE_NOT_YET_VALID: (
        "Code not yet valid, check phone clock",
        "健康码尚未生效，请检查手机时间",
    ),
    ReasonCode.CODE_REPLAY: ("Code already used", "健康码已被使用"),
    ReasonCode.CODE_RED: ("Health code: red", "健康码：红码"),
    ReasonCode.CODE_YELLOW: ("Health code: yellow", "健康码：黄码"),
    ReasonCode.CODE_STATUS_CHANGED: ("Health status has changed", "健康状态已变更"),
    ReasonCode.CAMERA_FAULT: ("Camera fault, please call staff", "摄像头故障，请联系工作人员"),
    ReasonCode.CAMERA_RECOVERED: ("Camera working again", "摄像头已恢复"),
    ReasonCode.DOOR_HELD_OPEN: ("Door held open", "门长时间未关闭"),
    ReasonCode.DOOR_FORCED: ("Door forced open", "门被强行打开"),
    ReasonCode.DOOR_CLOSED: ("Door closed", "门已关闭"),
    ReasonCode.OUTBOX_FULL: ("Fleet upload queue full", "上传队列已满"),
    ReasonCode.DISK_FULL: ("Storage full, please call staff", "存储空间已满，请联系工作人员"),
    ReasonCode.DISK_RECOVERED: ("Storage working again", "存储已恢复"),
}


def messages(reason: ReasonCode) -> tuple[str, str]:
    """Return the (English, Chinese) message for ``reason``."""
    return MESSAGES[reason]


def is_admit(reason: ReasonCode) -> bool:
    """True for the codes that open the gate."""
    return reason in ADMIT_CODES
