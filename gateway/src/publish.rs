//! Publishing outbox rows to RabbitMQ: topic exchange from the model, routing key
//! `<prefix>.<channel_id>`, persistent (delivery_mode 2), mandatory, publisher confirms.
//! A row counts as published only when the broker acked it and did not return it
//! (a returned mandatory message had no queue to go to: a failure, retried later).

use std::time::Duration;

use anyhow::{Result, anyhow};
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::config::BrokerTarget;
use crate::health::{self, Health};
use crate::store::OutboxRow;
use tgstack::model::Endpoint;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one batch's confirms before the connection is considered broken.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// A pause between two confirms this long already says the broker is not answering:
/// /health reports it down while the batch keeps waiting up to CONFIRM_TIMEOUT (giving up
/// sooner would only publish the batch twice after a slow moment).
pub const CONFIRM_STALL: Duration = Duration::from_secs(2);

pub struct Publisher {
    target: BrokerTarget,
    link: Option<(Connection, Channel)>,
    /// The endpoint tried first: the one that answered last.
    preferred: usize,
}

/// Outcome of publishing a batch.
#[derive(Debug, Default)]
pub struct Published {
    /// Rows the broker confirmed.
    pub confirmed: Vec<usize>,
    /// The first failure, if any (rows of its channel after it were not attempted).
    pub error: Option<String>,
}

impl Publisher {
    pub fn new(target: BrokerTarget) -> Self {
        Publisher {
            target,
            link: None,
            preferred: 0,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
    }

    /// Connects (with publisher confirms) unless connected already.
    pub async fn connect(&mut self) -> Result<()> {
        self.channel().await.map(|_| ())
    }

    async fn channel(&mut self) -> Result<Channel> {
        if let Some((connection, channel)) = &self.link {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            self.link = None;
        }
        // Each member of a cluster in turn, from the one that answered last.
        let count = self.target.endpoints.len();
        let mut failures = Vec::new();
        for step in 0..count {
            let index = (self.preferred + step) % count;
            let endpoint = &self.target.endpoints[index];
            match self.connect_to(endpoint).await {
                Ok((connection, channel)) => {
                    self.preferred = index;
                    self.link = Some((connection, channel.clone()));
                    return Ok(channel);
                }
                Err(error) => failures.push(error),
            }
        }
        if failures.is_empty() {
            return Err(anyhow!("the model gives no rabbitmq address"));
        }
        Err(anyhow!("{}", failures.join("; ")))
    }

    /// A connection with a confirming channel to the broker at `endpoint`; the error
    /// names the endpoint, never the password.
    async fn connect_to(&self, endpoint: &Endpoint) -> Result<(Connection, Channel), String> {
        let connect = async {
            let connection =
                Connection::connect(&self.target.uri(endpoint), ConnectionProperties::default())
                    .await?;
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>((connection, channel))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Err(_) => Err(format!(
                "cannot connect to rabbitmq at {endpoint}: timed out"
            )),
            // lapin's errors carry no URI, so no password.
            Ok(Err(e)) => Err(format!("cannot connect to rabbitmq at {endpoint}: {e}")),
            Ok(Ok(link)) => Ok(link),
        }
    }

    /// One round trip on the open channel (`basic.qos`, harmless on a publishing channel),
    /// answered within `timeout`: a broker that holds the connection open and forwards
    /// nothing fails it. Not connected is an error too; nothing is reconnected here.
    pub async fn probe(&self, timeout: Duration) -> Result<()> {
        let Some((_, channel)) = self.link.as_ref().filter(|_| self.is_connected()) else {
            return Err(anyhow!("not connected"));
        };
        match tokio::time::timeout(timeout, channel.basic_qos(0, BasicQosOptions::default())).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(anyhow!("{error}")),
            Err(_) => Err(anyhow!("no answer within {timeout:?}")),
        }
    }

    /// Drops the connection (after a failure) so the next call reconnects, to the next
    /// member of a cluster first: the failure may have been its member's.
    pub async fn reset(&mut self) {
        self.preferred = (self.preferred + 1) % self.target.endpoints.len().max(1);
        if let Some((connection, _)) = self.link.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                connection.close(0, "reconnecting".into()),
            )
            .await;
        }
    }

    /// Publishes rows in order and waits for their confirms. After a channel's first
    /// failure its later rows are not attempted, so each channel stays in order. A stall
    /// of the confirms is reported in `health` as soon as it lasts [`CONFIRM_STALL`].
    pub async fn publish(&mut self, rows: &[OutboxRow], health: &Health) -> Published {
        let mut outcome = Published::default();
        let channel = match self.channel().await {
            Ok(channel) => channel,
            Err(error) => {
                outcome.error = Some(error.to_string());
                return outcome;
            }
        };
        let mut refused_only = true;
        let mut pending = Vec::with_capacity(rows.len());
        let mut failed_channels: Vec<i64> = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            if failed_channels.contains(&row.channel_id) {
                continue;
            }
            let body = match serde_json::to_vec(&row.payload) {
                Ok(body) => body,
                Err(error) => {
                    failed_channels.push(row.channel_id);
                    outcome
                        .error
                        .get_or_insert(format!("payload of outbox row {}: {error}", row.id));
                    continue;
                }
            };
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type(ShortString::from("application/json"))
                .with_message_id(ShortString::from(format!("{}", row.id)))
                .with_type(ShortString::from(row.event.as_str()));
            let sent = channel
                .basic_publish(
                    ShortString::from(self.target.exchange.as_str()),
                    ShortString::from(self.target.routing_key(row.channel_id)),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    properties,
                )
                .await;
            match sent {
                Ok(confirm) => pending.push((index, confirm)),
                Err(error) => {
                    refused_only = false;
                    failed_channels.push(row.channel_id);
                    outcome.error.get_or_insert(format!("publish: {error}"));
                }
            }
        }
        let (results, timed_out) = collect_confirms(pending, health).await;
        if timed_out {
            refused_only = false;
            outcome.error = Some(format!("no confirms within {CONFIRM_TIMEOUT:?}"));
        }
        for (index, result) in results {
            let channel_id = rows[index].channel_id;
            // A channel that failed earlier in this batch must not have later rows
            // counted: they would be republished out of order.
            if failed_channels.contains(&channel_id) {
                continue;
            }
            match result {
                Ok(Confirmation::Ack(None)) => outcome.confirmed.push(index),
                Ok(Confirmation::Ack(Some(_))) => {
                    failed_channels.push(channel_id);
                    outcome.error.get_or_insert(format!(
                        "unroutable: no queue is bound for routing key {}",
                        self.target.routing_key(channel_id)
                    ));
                }
                Ok(Confirmation::Nack(_)) => {
                    failed_channels.push(channel_id);
                    outcome
                        .error
                        .get_or_insert("the broker nacked a message".into());
                }
                Ok(Confirmation::NotRequested) => {
                    failed_channels.push(channel_id);
                    outcome
                        .error
                        .get_or_insert("publisher confirms are off".into());
                }
                Err(error) => {
                    refused_only = false;
                    failed_channels.push(channel_id);
                    outcome.error.get_or_insert(format!("confirm: {error}"));
                }
            }
        }
        // A refused message (unroutable, nacked) leaves the link healthy; anything else
        // (send error, missing confirms) may be a half-dead connection: start afresh.
        if outcome.error.is_some() && (!self.is_connected() || !refused_only) {
            self.reset().await;
        }
        outcome
    }
}

/// Waits for the confirms in publishing order until CONFIRM_TIMEOUT has passed; returns
/// those that arrived (acks received before a timeout still count, so those rows are not
/// published twice) and whether the deadline cut the rest off.
async fn collect_confirms(
    pending: Vec<(usize, lapin::PublisherConfirm)>,
    health: &Health,
) -> (Vec<(usize, lapin::Result<Confirmation>)>, bool) {
    let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
    let mut results = Vec::with_capacity(pending.len());
    let mut stall_reported = false;
    for (index, confirm) in pending {
        let mut confirm = std::pin::pin!(confirm);
        let result = match tokio::time::timeout(CONFIRM_STALL, confirm.as_mut()).await {
            Ok(result) => result,
            Err(_) => {
                if !stall_reported {
                    stall_reported = true;
                    health.set(
                        health::RABBITMQ,
                        false,
                        format!("no publisher confirm for {CONFIRM_STALL:?}"),
                    );
                }
                match tokio::time::timeout_at(deadline, confirm).await {
                    Ok(result) => result,
                    Err(_) => return (results, true),
                }
            }
        };
        results.push((index, result));
    }
    (results, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// The shared RabbitMQ of the machine (scripts/test-env.sh starts it) behind a port
    /// that refuses: a cluster member that is down.
    fn target(ports: &[u16]) -> BrokerTarget {
        BrokerTarget {
            endpoints: ports
                .iter()
                .map(|&port| Endpoint {
                    host: "127.0.0.1".into(),
                    port,
                })
                .collect(),
            user: "guest".into(),
            password: Secret::new("guest"),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            routing_key_prefix: "test".into(),
        }
    }

    fn refused_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn connects_to_the_next_member_when_one_is_down_and_prefers_it_then() {
        let down = refused_port();
        let mut publisher = Publisher::new(target(&[down, 5672]));
        publisher
            .connect()
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (bash scripts/test-env.sh starts it)");
        assert!(publisher.is_connected());
        assert_eq!(publisher.preferred, 1, "the member that answered");
        publisher.probe(Duration::from_secs(5)).await.unwrap();
        // After a failure the next member is tried first: here the one that is down,
        // then the live one again.
        publisher.reset().await;
        assert!(!publisher.is_connected());
        publisher.connect().await.unwrap();
        assert_eq!(publisher.preferred, 1);
        publisher.reset().await;
    }

    #[tokio::test]
    async fn with_every_member_down_the_error_names_each_and_no_password() {
        let (a, b) = (refused_port(), refused_port());
        let mut publisher = Publisher::new(target(&[a, b]));
        let error = publisher.connect().await.unwrap_err().to_string();
        assert!(error.contains(&format!("127.0.0.1:{a}")), "{error}");
        assert!(error.contains(&format!("127.0.0.1:{b}")), "{error}");
        assert!(!error.contains("guest@"), "{error}");
    }
}
