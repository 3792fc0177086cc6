//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several replicas only
//! one launches. The ledger's exactly-once reservation stays the last line of defence; the
//! Lease keeps a second replica from even planning.
//!
//! The rules, as client-go's leader election has them: a Lease held by someone else is
//! respected until `renewTime + leaseDurationSeconds` has passed; the holder renews it every
//! `duration / 3`; every write carries the `resourceVersion` it read, so of two replicas that
//! try at once one gets `409 Conflict` and stays a follower.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// What to do about the Lease as it stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// There is none: create it, holding it.
    Create,
    /// It is ours: renew it.
    Renew,
    /// Nobody holds it, or its holder let it expire: take it.
    Take,
    /// Someone else holds it: wait.
    Wait { holder: String },
}

/// Decides from the Lease read at `now` (pure).
pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: i64) -> Step {
    let Some(spec) = lease else {
        return Step::Create;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::Take;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = spec.renew_time.as_ref().map(micro_time_secs);
    match renewed {
        Some(at) if at + duration > now => Step::Wait { holder },
        _ => Step::Take,
    }
}

fn micro_time_secs(t: &MicroTime) -> i64 {
    t.0.as_second()
}

/// Who competes for which Lease.
#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace: String,
    pub name: String,
    /// This replica (the pod's name).
    pub identity: String,
    pub duration: Duration,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    settings: Settings,
}

impl Elector {
    pub fn new(client: kube::Client, settings: Settings) -> Elector {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    /// One round: reads the Lease and creates, takes or renews it if it may. True when this
    /// replica holds it afterwards; a conflict (another replica wrote first) is false.
    pub async fn round(&self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.settings.name).await?;
        let stamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let step = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.settings.identity,
            stamp.0.as_second(),
        );
        let mut spec = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let written = match step {
            Step::Wait { .. } => return Ok(false),
            Step::Create => {
                spec.acquire_time = Some(stamp.clone());
                spec.lease_transitions = Some(0);
                self.fill(&mut spec, stamp);
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Step::Take | Step::Renew => {
                if step == Step::Take {
                    spec.acquire_time = Some(stamp.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                self.fill(&mut spec, stamp);
                let mut lease = current.unwrap_or_default();
                lease.spec = Some(spec);
                // The resourceVersion read goes back with it: a write in between is a 409.
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn fill(&self, spec: &mut LeaseSpec, stamp: MicroTime) {
        spec.holder_identity = Some(self.settings.identity.clone());
        spec.lease_duration_seconds = Some(self.settings.duration.as_secs().max(1) as i32);
        spec.renew_time = Some(stamp);
    }

    /// Competes for the Lease for good: the receiver says whether this replica leads. A
    /// leader that cannot renew (API errors) stops leading when its Lease would expire.
    pub fn spawn(self) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let retry = (self.settings.duration / 3).max(Duration::from_millis(200));
            let mut held_until: Option<tokio::time::Instant> = None;
            loop {
                let leading = match self.round().await {
                    Ok(true) => {
                        held_until = Some(tokio::time::Instant::now() + self.settings.duration);
                        true
                    }
                    Ok(false) => {
                        held_until = None;
                        false
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, lease = %self.settings.name, "cannot read or write the leader Lease");
                        held_until.is_some_and(|t| tokio::time::Instant::now() < t)
                    }
                };
                if *tx.borrow() != leading {
                    tracing::info!(
                        lease = %self.settings.name,
                        identity = %self.settings.identity,
                        leading,
                        "{}",
                        if leading { "leading: this replica launches" } else { "not leading: another replica launches" }
                    );
                }
                if tx.send(leading).is_err() {
                    return; // nobody listens any more
                }
                tokio::time::sleep(retry).await;
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let now = NOW;
        LeaseSpec {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(
                k8s_openapi::jiff::Timestamp::from_second(now - renewed_secs_ago).unwrap(),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_lease_is_created_and_ours_is_renewed() {
        let now = NOW;
        assert_eq!(decide(None, "a", now), Step::Create);
        assert_eq!(
            decide(Some(&lease(Some("a"), 100, 15)), "a", now),
            Step::Renew
        );
    }

    #[test]
    fn anothers_live_lease_is_respected_until_it_expires() {
        let now = NOW;
        assert_eq!(
            decide(Some(&lease(Some("b"), 5, 15)), "a", now),
            Step::Wait { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), 16, 15)), "a", now),
            Step::Take
        );
        assert_eq!(decide(Some(&lease(None, 1, 15)), "a", now), Step::Take);
        assert_eq!(decide(Some(&lease(Some(""), 1, 15)), "a", now), Step::Take);
    }
}
