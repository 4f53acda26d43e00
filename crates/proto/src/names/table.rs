//! The names themselves: one line per value of every enum of `truc.v1`.
//! A value added to a `.proto` file fails to compile here until it is
//! named.

use std::fmt;
use std::str::FromStr;

use super::{parse, Named, UnknownName};
use crate::v1::{
    AgencyState, BusinessType, DamageKind, DeadLetterReason, PeerLinkState, Priority, ReceiptEvent, ReceiverType,
    SignatureScheme, StatsGrouping, StatusCode, TransportState,
};

/// `Named`, `Display` and `FromStr` for an enum from its table: each value,
/// its name, and the other spellings accepted for it.
macro_rules! names {
    ($(
        $ty:ident: $what:literal {
            $($value:ident => $name:literal $([$($alias:literal),+])?,)+
        }
    )+) => {$(
        impl Named for $ty {
            const WHAT: &'static str = $what;
            const ALL: &'static [Self] = &[$($ty::$value),+];

            fn name(self) -> &'static str {
                match self {
                    $($ty::$value => $name,)+
                }
            }

            fn aliases(self) -> &'static [&'static str] {
                match self {
                    $($ty::$value => &[$($($alias),+)?],)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.name())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                parse(s)
            }
        }
    )+};
}

names! {
    Priority: "priority" {
        Normal => "thuong" ["normal", "thường"],
        Urgent => "khan" ["urgent", "khẩn"],
        VeryUrgent => "thuong-khan" ["very-urgent", "thượng-khẩn"],
        Express => "hoa-toc" ["express", "hỏa-tốc", "hoả-tốc"],
        TimedExpress => "hoa-toc-hen-gio" ["timed-express", "hỏa-tốc-hẹn-giờ", "hoả-tốc-hẹn-giờ"],
    }
    BusinessType: "business type" {
        New => "new",
        Revoke => "revoke",
        Update => "update",
        Replace => "replace",
    }
    StatusCode: "status code" {
        Unspecified => "unspecified",
        Arrived => "arrived",
        Refused => "refused",
        Registered => "registered",
        Assigned => "assigned",
        Processing => "processing",
        Done => "done",
        TakeBack => "take-back",
        Agree => "agree",
        Disagree => "disagree",
    }
    SignatureScheme: "signature scheme" {
        Unspecified => "unspecified",
        RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
        RsaPssSha256 => "rsa-pss-sha256",
    }
    ReceiverType: "receiver type" {
        Removed => "removed",
        Added => "added",
    }
    TransportState: "transport state" {
        Unspecified => "unspecified",
        Queued => "queued",
        Delivered => "delivered",
        DeadLettered => "dead-lettered",
        Withdrawn => "withdrawn",
        Redirected => "redirected",
        Forwarded => "forwarded",
    }
    DeadLetterReason: "dead-letter reason" {
        Unspecified => "unspecified",
        Attempts => "attempts",
        Corrupt => "corrupt",
    }
    AgencyState: "agency state" {
        Unspecified => "unspecified",
        Active => "active",
        Suspended => "suspended",
        Retired => "retired",
    }
    PeerLinkState: "peer link state" {
        Unspecified => "unspecified",
        Connected => "connected",
        Unreachable => "unreachable",
        Paused => "paused",
        Idle => "idle",
    }
    DamageKind: "damage kind" {
        Unspecified => "unspecified",
        Document => "document",
        PayloadFile => "payload-file",
        Receipt => "receipt",
        TreeHead => "tree-head",
    }
    StatsGrouping: "stats grouping" {
        Unspecified => "unspecified",
        Day => "day",
        Month => "month",
    }
    ReceiptEvent: "receipt event" {
        Unspecified => "unspecified",
        Accepted => "accepted",
        Delivered => "delivered",
        LeaseExpired => "lease-expired",
        DeadLettered => "dead-lettered",
        AgencyChanged => "agency-changed",
        StatusReported => "status-reported",
        Withdrawn => "withdrawn",
        Redirected => "redirected",
        Redriven => "redriven",
        Purged => "purged",
        OperatorAction => "operator-action",
        Quarantined => "quarantined",
        Restored => "restored",
        Forwarded => "forwarded",
    }
}
