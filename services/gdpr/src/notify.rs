//! Delivery of verification codes: an outbox directory (local use, tests)
//! or SMTP (build feature `smtp`).

use crate::config::Settings;
use crate::error::{Error, Result};
use std::path::PathBuf;

pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: String,
    /// Names the outbox file.
    pub request_id: &'a str,
}

pub enum Notifier {
    /// One RFC 5322 file per mail: `<outbox>/<request id>-<n>.eml`.
    Outbox(PathBuf),
    #[cfg(feature = "smtp")]
    Smtp {
        transport: lettre::SmtpTransport,
        from: lettre::message::Mailbox,
    },
}

impl Notifier {
    pub fn from_settings(settings: &Settings) -> Result<Notifier> {
        match &settings.smtp_url {
            None => Ok(Notifier::Outbox(settings.outbox.clone())),
            #[cfg(feature = "smtp")]
            Some(url) => {
                let transport = lettre::SmtpTransport::from_url(url)
                    .map_err(|e| Error::Config(format!("smtp url: {e}")))?
                    .build();
                let from = settings
                    .mail_from
                    .parse()
                    .map_err(|e| Error::Config(format!("mail_from: {e}")))?;
                Ok(Notifier::Smtp { transport, from })
            }
            #[cfg(not(feature = "smtp"))]
            Some(_) => Err(Error::Config(
                "smtp_url is set but this build lacks the `smtp` feature (cargo build -p meshguard-gdpr --features smtp)".into(),
            )),
        }
    }

    pub fn send(&self, mail: &Mail<'_>, from: &str) -> Result<()> {
        match self {
            Notifier::Outbox(dir) => {
                crate::files::private_dir(dir)?;
                let mut n = 1;
                let path = loop {
                    let p = dir.join(format!("{}-{n}.eml", mail.request_id));
                    if !p.exists() {
                        break p;
                    }
                    n += 1;
                };
                let text = format!(
                    "From: {from}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
                    mail.to,
                    mail.subject,
                    chrono::Utc::now().to_rfc2822(),
                    mail.body
                );
                crate::files::private_file(&path, text.as_bytes())
                    .map_err(|e| Error::Unavailable(format!("outbox {}: {e}", path.display())))
            }
            #[cfg(feature = "smtp")]
            Notifier::Smtp { transport, from } => {
                use lettre::Transport;
                let to = mail
                    .to
                    .parse()
                    .map_err(|e| Error::Invalid(format!("email: {e}")))?;
                let message = lettre::Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .body(mail.body.clone())
                    .map_err(|e| Error::Internal(format!("mail: {e}")))?;
                transport
                    .send(&message)
                    .map(|_| ())
                    .map_err(|e| Error::Unavailable(format!("smtp: {e}")))
            }
        }
    }
}
