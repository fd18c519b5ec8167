//! The catalog's shared words: a link's channel, an object's status, a program's answer to a
//! blocked click.

use serde::{Deserialize, Serialize};

/// Lifecycle of a program, partner or link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Paused,
    Expired,
}

impl Status {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Expired => "expired",
        }
    }

    /// Parses the stored spelling; anything else is `None`, never a guess.
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Active, Status::Paused, Status::Expired].into_iter().find(|v| v.as_str() == s)
    }
}

/// What a program does with a blocked click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlockedAction {
    /// Redirect without a click id (the visitor never notices).
    #[default]
    Redirect,
    /// Refuse with `403`.
    Forbid,
}

/// Where a link is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[default]
    Web,
    Social,
    Email,
    Qr,
    Offline,
    Marketplace,
}

impl Channel {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Social => "social",
            Channel::Email => "email",
            Channel::Qr => "qr",
            Channel::Offline => "offline",
            Channel::Marketplace => "marketplace",
        }
    }

    /// Every channel.
    pub const ALL: [Channel; 6] = [Channel::Web, Channel::Social, Channel::Email, Channel::Qr, Channel::Offline, Channel::Marketplace];

    /// Parses the stored spelling; anything else is `None`, never a guess.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|v| v.as_str() == s)
    }
}
