//! Operators, their roles and their sessions.
//!
//! Users come from the daemon's TOML with an Argon2id password hash (`mizugiwa user hash`
//! prints one). A login returns a random session token, kept in memory only: restarting the
//! daemon logs everyone out, which is the safe failure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

/// What a user may do. Ordered: each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the map, the records and the metrics.
    Viewer,
    /// Also acts on alerts: acknowledge, resolve, assign, comment, raise.
    Operator,
    /// Also reads the audit log.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A user as configured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string from `mizugiwa user hash`.
    pub password_hash: String,
}

/// Hashes a password for the config file.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// User name.
    pub user: String,
    /// Role.
    pub role: Role,
}

/// Users and open sessions.
#[derive(Debug)]
pub struct Auth {
    users: HashMap<String, UserConfig>,
    sessions: Mutex<HashMap<String, (Session, Instant)>>,
    ttl: Duration,
    decoy: String,
}

/// Why a login failed. Deliberately the same message for an unknown user and a wrong password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown user or wrong password")]
pub struct LoginFailed;

impl Auth {
    /// Users from the config; sessions last `ttl` from login.
    pub fn new(users: &[UserConfig], ttl: Duration) -> anyhow::Result<Auth> {
        let mut map = HashMap::new();
        for u in users {
            PasswordHash::new(&u.password_hash).map_err(|e| {
                anyhow::anyhow!(
                    "user {:?}: password_hash is not an Argon2 PHC string ({e}); make one with `mizugiwa user hash`",
                    u.name
                )
            })?;
            if map.insert(u.name.clone(), u.clone()).is_some() {
                anyhow::bail!("user {:?} is configured twice", u.name);
            }
        }
        Ok(Auth {
            users: map,
            sessions: Mutex::new(HashMap::new()),
            ttl,
            decoy: hash_password("decoy password for unknown users")?,
        })
    }

    /// Checks a password and opens a session; returns its token.
    pub fn login(&self, user: &str, password: &str) -> Result<(String, Session), LoginFailed> {
        let Some(u) = self.users.get(user) else {
            // Spend the same time on an unknown user as on a wrong password, so that timing
            // does not tell which user names exist.
            if let Ok(hash) = PasswordHash::new(&self.decoy) {
                let _ = Argon2::default().verify_password(password.as_bytes(), &hash);
            }
            return Err(LoginFailed);
        };
        let hash = PasswordHash::new(&u.password_hash).map_err(|_| LoginFailed)?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .map_err(|_| LoginFailed)?;
        let token = {
            use rand::RngCore;
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let session = Session {
            user: u.name.clone(),
            role: u.role,
        };
        if let Ok(mut s) = self.sessions.lock() {
            let now = Instant::now();
            s.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
            s.insert(token.clone(), (session.clone(), now));
        }
        Ok((token, session))
    }

    /// The session of a token, if it is open and not expired.
    pub fn session(&self, token: &str) -> Option<Session> {
        let s = self.sessions.lock().ok()?;
        let (session, at) = s.get(token)?;
        (at.elapsed() < self.ttl).then(|| session.clone())
    }

    /// Ends a session.
    pub fn logout(&self, token: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(token);
        }
    }

    /// Open sessions (for metrics).
    pub fn open_sessions(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_checks_the_password_and_sessions_expire() {
        let users = vec![UserConfig {
            name: "duty".into(),
            role: Role::Operator,
            password_hash: hash_password("correct horse").unwrap(),
        }];
        let auth = Auth::new(&users, Duration::from_millis(200)).unwrap();
        assert_eq!(auth.login("duty", "wrong"), Err(LoginFailed));
        assert_eq!(auth.login("nobody", "correct horse"), Err(LoginFailed));
        let (token, s) = auth.login("duty", "correct horse").unwrap();
        assert_eq!(s.role, Role::Operator);
        assert_eq!(auth.session(&token).unwrap().user, "duty");
        assert!(auth.session("forged").is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(auth.session(&token).is_none(), "expired");
    }

    #[test]
    fn a_config_with_a_plain_text_password_is_refused() {
        let users = vec![UserConfig {
            name: "duty".into(),
            role: Role::Admin,
            password_hash: "hunter2".into(),
        }];
        let err = Auth::new(&users, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("mizugiwa user hash"));
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}
