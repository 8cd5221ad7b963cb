"""The send journal: one interface (`Journal`, a Protocol), and its backends.

- `interface.py`: the Protocol, the records it hands out, the state constants; pure.
- `sqlite.py`: `SqliteJournal`, the embedded default (`journal.sqlite` in the state directory).

Callers import from here: `from gsmgw.spool.journal import Journal, SqliteJournal, NewMessage, ...`.
"""

from gsmgw.spool.journal.interface import (
    COUNT_FAILED,
    COUNT_RECEIVED,
    COUNT_SENT,
    DELIVERED,
    DONE_KEEP,
    EXPIRED,
    FAILED,
    FINAL_REPORTS,
    FINAL_STATES,
    MESSAGE_STATES,
    PART_PENDING,
    PART_STATES,
    PART_SUBMITTED,
    PART_SUBMITTING,
    PRIORITY,
    QUEUED,
    REPORT_DELIVERED,
    REPORT_FAILED,
    REPORT_PENDING,
    SENDING,
    SENT,
    InboundGroup,
    Journal,
    JournalError,
    MessageRow,
    NewMessage,
    NewPart,
    PartRow,
    QueuedMessage,
    Recovery,
    ReportMatch,
    ClusterJournal,
    Fenced,
    ForwardedReport,
    JournalBusy,
    JournalUnavailable,
    Lease,
    MemberRow,
    Released,
    day_of,
    key_name,
    same_number,
)
from gsmgw.spool.journal.sqlite import JOURNAL_FILE, SqliteJournal

__all__ = [
    "COUNT_FAILED", "COUNT_RECEIVED", "COUNT_SENT", "DELIVERED", "DONE_KEEP", "EXPIRED", "FAILED",
    "FINAL_REPORTS", "FINAL_STATES", "MESSAGE_STATES", "PART_PENDING", "PART_STATES", "PART_SUBMITTED",
    "PART_SUBMITTING", "PRIORITY", "QUEUED", "REPORT_DELIVERED", "REPORT_FAILED", "REPORT_PENDING",
    "SENDING", "SENT", "InboundGroup", "Journal", "JournalError", "MessageRow", "NewMessage", "NewPart",
    "PartRow", "QueuedMessage", "Recovery", "ReportMatch", "day_of", "same_number", "JOURNAL_FILE",
    "SqliteJournal", "ClusterJournal", "Fenced", "ForwardedReport", "JournalBusy", "JournalUnavailable", "Lease",
    "MemberRow",
    "Released", "key_name",
]
