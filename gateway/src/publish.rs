//! Publishing outbox rows to RabbitMQ: topic exchange from the model, routing key
//! `<prefix>.<channel_id>`, persistent (delivery_mode 2), mandatory, publisher confirms.
//! A row counts as published only when the broker acked it and did not return it
//! (a returned mandatory message had no queue to go to: a failure, retried later).

use std::time::Duration;

use anyhow::{Result, anyhow};
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::config::BrokerTarget;
use crate::store::OutboxRow;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one batch's confirms before the connection is considered broken.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Publisher {
    target: BrokerTarget,
    link: Option<(Connection, Channel)>,
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
        Publisher { target, link: None }
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
        let connect = async {
            let connection =
                Connection::connect(&self.target.uri(), ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>((connection, channel))
        };
        let (connection, channel) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                anyhow!(
                    "cannot connect to rabbitmq at {}: timed out",
                    self.target.endpoint
                )
            })?
            // lapin's errors carry no URI, so no password.
            .map_err(|e| {
                anyhow!(
                    "cannot connect to rabbitmq at {}: {e}",
                    self.target.endpoint
                )
            })?;
        self.link = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// Drops the connection (after a failure) so the next call reconnects.
    pub async fn reset(&mut self) {
        if let Some((connection, _)) = self.link.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                connection.close(0, "reconnecting".into()),
            )
            .await;
        }
    }

    /// Publishes rows in order and waits for their confirms. After a channel's first
    /// failure its later rows are not attempted, so each channel stays in order.
    pub async fn publish(&mut self, rows: &[OutboxRow]) -> Published {
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
        let confirms = async {
            let mut results = Vec::with_capacity(pending.len());
            for (index, confirm) in pending {
                results.push((index, confirm.await));
            }
            results
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirms).await {
            Ok(results) => {
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
            }
            Err(_) => {
                refused_only = false;
                outcome.error = Some(format!("no confirms within {CONFIRM_TIMEOUT:?}"));
                outcome.confirmed.clear();
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
