//! Kubernetes: Cascade's custom resources as the source of the definitions, and the API
//! server as where their status is told.
//!
//! `cascade controller --kube` watches the five kinds, turns the objects into the documents
//! the one loader reads (an invalid object is set aside with its located message as a
//! condition, the rest go on), plans and launches as for any other source, and writes each
//! object's status back. A `coordination.k8s.io` Lease decides which replica launches; a
//! finalizer on each campaign applies its `removalPolicy` before the campaign goes.

pub mod admission;
pub mod lease;
pub mod objects;
pub mod status;
pub mod watch;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::ledger::{Ledger, LedgerError, Result};
use crate::model::{ObjectKey, SourceFile};
use crate::runtime::definitions::{Applied, apply_removals, removed_stages};

/// Where and how to follow the cluster.
#[derive(Clone, Debug)]
pub struct KubeFollow {
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// This replica's name (the pod's), in the Lease and in Events.
    pub identity: String,
    /// Compete for this Lease before launching anything (`None`: a single replica).
    pub lease: Option<lease::Settings>,
    /// Serve the validating admission webhook (every replica, leading or not).
    pub admission: Option<admission::Settings>,
}

/// What the Kubernetes side brings to the controller loop.
pub enum KubeEvent {
    Snapshot(watch::Snapshot),
    LostLead,
}

/// The controller's Kubernetes side: the watchers' snapshots in, statuses out.
pub struct KubeSide {
    snapshots: watch::Snapshots,
    writer: tokio::sync::watch::Sender<writer::Input>,
    leader: Option<tokio::sync::watch::Receiver<bool>>,
    documents: Vec<SourceFile>,
    /// Where launches run: the image holds the scripts, so one directory under the state.
    work: PathBuf,
}

fn kube_error(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Invalid(format!("{what}: {e}"))
}

impl KubeSide {
    /// Connects (kubeconfig, or the pod's service account), waits to lead if a Lease is to be
    /// held, and waits for the first complete listing: the definitions to start from.
    pub async fn start(follow: &KubeFollow, state: &Path) -> Result<(KubeSide, Applied)> {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| kube_error("cannot reach the Kubernetes API server", e))?;
        if let Some(settings) = &follow.admission {
            admission::serve(client.clone(), settings.clone())
                .await
                .map_err(|e| kube_error("the admission webhook cannot start", e))?;
        }
        let leader = match &follow.lease {
            Some(settings) => {
                let mut rx = lease::Elector::new(client.clone(), settings.clone()).spawn();
                if !*rx.borrow() {
                    tracing::info!(lease = %settings.name, namespace = %settings.namespace, "waiting to lead");
                }
                rx.wait_for(|leading| *leading)
                    .await
                    .map_err(|e| kube_error("leader election ended", e))?;
                Some(rx)
            }
            None => None,
        };
        let mut side = KubeSide {
            snapshots: watch::spawn(client.clone(), &follow.namespaces),
            writer: writer::spawn(client, follow.identity.clone()),
            leader,
            documents: Vec::new(),
            work: state.join("kubernetes"),
        };
        let first = side
            .snapshots
            .recv()
            .await
            .ok_or_else(|| kube_error("the watchers", "ended before listing"))?;
        let mut applied = Applied {
            graph: Default::default(),
            revision: None,
            checkout: Some(side.work.clone()),
        };
        side.take(first, None, &mut applied)?;
        Ok((side, applied))
    }

    /// The next thing to act on: new objects, or the end of this replica's lead.
    pub async fn next_event(&mut self) -> KubeEvent {
        let leader = &mut self.leader;
        let lost = async move {
            match leader {
                Some(rx) => {
                    let _ = rx.wait_for(|leading| !*leading).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(snap) = self.snapshots.recv() => KubeEvent::Snapshot(snap),
            () = lost => KubeEvent::LostLead,
        }
    }

    /// Takes a snapshot: when a definition changed, loads the graph (setting invalid objects
    /// aside), applies the removal policy of what left, and hands the objects to the writer.
    pub fn take(
        &mut self,
        snap: watch::Snapshot,
        ledger: Option<&mut Ledger>,
        applied: &mut Applied,
    ) -> Result<()> {
        let mut input = self.writer.borrow().clone();
        if snap.definitions_changed || self.documents.is_empty() {
            let documents = objects::documents(&snap.objects);
            if documents != self.documents || input.objects.is_empty() {
                let sorted = objects::load_valid(&documents);
                for (path, errors) in &sorted.rejected {
                    tracing::warn!(object = %path, errors = errors.len(), "invalid: set aside");
                }
                if let Some(ledger) = ledger {
                    apply_removals(ledger, &removed_stages(&applied.graph, &sorted.graph), None)?;
                }
                applied.graph = sorted.graph;
                self.make_launch_dirs(applied)?;
                input.rejected = Arc::new(sorted.rejected);
                self.documents = documents;
                crate::memory::give_back();
            }
        }
        input.objects = snap.objects;
        self.writer.send_replace(input);
        Ok(())
    }

    fn make_launch_dirs(&self, applied: &Applied) -> Result<()> {
        for stage in applied.graph.stages.iter() {
            std::fs::create_dir_all(applied.launch_dir(Some(stage)))?;
        }
        std::fs::create_dir_all(&self.work)?;
        Ok(())
    }

    /// Tells the writer the planner's statuses as the ledger now has them.
    pub fn report(&self, ledger: &Ledger) -> Result<()> {
        let report = report(ledger)?;
        if *self.writer.borrow().report != report {
            self.writer
                .send_modify(|input| input.report = Arc::new(report));
        }
        Ok(())
    }

    /// Whether this replica may launch (always, without a Lease).
    pub fn leading(&self) -> bool {
        self.leader.as_ref().is_none_or(|rx| *rx.borrow())
    }
}

/// The planner's statuses as the ledger has them, in the resources' `status` form.
pub fn report(ledger: &Ledger) -> Result<status::Report> {
    let saved = ledger.saved_stage_status()?;
    let mut counts = ledger.submission_counts()?;
    let stages = saved
        .iter()
        .filter_map(|s| {
            let entry =
                crate::cli::status::stage_entry(s, counts.remove(&s.stage).unwrap_or_default());
            Some((s.stage.clone(), entry.status?))
        })
        .collect();
    let campaigns = crate::cli::status::campaign_statuses(&saved)
        .into_iter()
        .filter_map(|(key, st)| {
            let (ns, name) = key.split_once('/')?;
            Some((ObjectKey::new(ns, name), st))
        })
        .collect();
    Ok(status::Report {
        stages,
        campaigns,
        recoveries: ledger.recovery_counts()?,
    })
}

/// How long a replica's Lease lasts without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
