//! The worker actor: holds the table the worker acts on.

use actix::prelude::*;
use ringflow_proto::{ClusterView, NodeInfo, PeerRole};

use super::core::{ViewChange, WorkerCore};
use crate::metrics::WorkerGauges;

/// The worker actor. Data-plane actors (stream operators, DHT stores) ask it for the
/// current table; the control session feeds it new ones.
pub struct WorkerActor {
    core: WorkerCore,
    connected: bool,
    gauges: WorkerGauges,
}

impl WorkerActor {
    pub(crate) fn new(core: WorkerCore) -> Self {
        Self {
            core,
            connected: false,
            gauges: WorkerGauges::new(),
        }
    }
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        let (owned, primaries) = self.core.owned();
        self.gauges
            .set(self.core.epoch(), owned.len(), primaries.len());
    }
}

/// A view received from the coordinator.
#[derive(Message)]
#[rtype(result = "ViewChange")]
pub(crate) struct ApplyView(pub ClusterView);

impl Handler<ApplyView> for WorkerActor {
    type Result = MessageResult<ApplyView>;

    fn handle(&mut self, msg: ApplyView, _: &mut Self::Context) -> Self::Result {
        let change = self.core.apply(msg.0);
        match &change {
            ViewChange::Applied {
                from,
                to,
                gained,
                lost,
            } => {
                let (owned, primaries) = self.core.owned();
                self.gauges
                    .set(self.core.epoch(), owned.len(), primaries.len());
                tracing::info!(
                    from,
                    to,
                    gained = gained.len(),
                    lost = lost.len(),
                    owned = owned.len(),
                    primaries = primaries.len(),
                    "acting on new assignment"
                );
            }
            ViewChange::Stale { offered, current } => {
                tracing::warn!(offered, current, "ignored a stale assignment");
            }
            ViewChange::Refreshed => {}
        }
        MessageResult(change)
    }
}

/// The session's connection state changed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SetConnected(pub bool);

impl Handler<SetConnected> for WorkerActor {
    type Result = ();

    fn handle(&mut self, msg: SetConnected, _: &mut Self::Context) {
        self.connected = msg.0;
    }
}

/// The epoch acted on.
#[derive(Message)]
#[rtype(result = "u64")]
pub(crate) struct CurrentEpoch;

impl Handler<CurrentEpoch> for WorkerActor {
    type Result = u64;

    fn handle(&mut self, _: CurrentEpoch, _: &mut Self::Context) -> u64 {
        self.core.epoch()
    }
}

/// This worker's description of itself.
#[derive(Message)]
#[rtype(result = "NodeInfo")]
pub(crate) struct GetInfo;

impl Handler<GetInfo> for WorkerActor {
    type Result = MessageResult<GetInfo>;

    fn handle(&mut self, _: GetInfo, _: &mut Self::Context) -> Self::Result {
        let (owned, primaries) = self.core.owned();
        MessageResult(NodeInfo {
            id: self.core.id().0.clone(),
            role: PeerRole::Worker,
            epoch: self.core.epoch(),
            partitions: owned.len() as u32,
            primaries: primaries.len() as u32,
            connected: self.connected,
        })
    }
}
