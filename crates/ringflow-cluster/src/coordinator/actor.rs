//! The coordinator actor: owns the core, persists every change before publishing it,
//! and runs failure detection on a timer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use ringflow_proto::{
    ClusterStatus, ClusterView, ErrorReply, Heartbeat, HeartbeatAck, JoinRequest, Welcome,
};
use ringflow_ring::WorkerId;
use tokio::sync::watch;

use super::core::CoordinatorCore;
use crate::metrics::CoordinatorGauges;
use crate::net::millis_since;
use crate::persist::StateFile;
use crate::ClusterError;

/// The coordinator actor. Runs on the System arbiter; sessions talk to it by message.
pub struct CoordinatorActor {
    core: CoordinatorCore,
    origin: Instant,
    state: StateFile,
    views: watch::Sender<Arc<ClusterView>>,
    heartbeat_interval_ms: u64,
    failure_timeout_ms: u64,
    published_epoch: u64,
    gauges: CoordinatorGauges,
}

impl CoordinatorActor {
    pub(crate) fn new(
        core: CoordinatorCore,
        origin: Instant,
        state: StateFile,
        views: watch::Sender<Arc<ClusterView>>,
        heartbeat_interval_ms: u64,
        failure_timeout_ms: u64,
    ) -> Self {
        let published_epoch = core.epoch();
        Self {
            core,
            origin,
            state,
            views,
            heartbeat_interval_ms,
            failure_timeout_ms,
            published_epoch,
            gauges: CoordinatorGauges::new(),
        }
    }

    fn now(&self) -> u64 {
        millis_since(self.origin)
    }

    /// Persists, then publishes: a table is never sent before it is on disk. If it cannot
    /// be persisted the coordinator stops (fail-stop): a restart recovers the last durable
    /// state, rather than workers acting on a table the coordinator would forget.
    fn commit(&mut self) {
        if let Err(e) = self.state.save(&self.core.persisted()) {
            tracing::error!(error = %e, "could not persist coordinator state: stopping");
            actix::System::current().stop_with_code(1);
            return;
        }
        let epoch = self.core.epoch();
        if epoch != self.published_epoch {
            tracing::info!(epoch, "publishing new assignment");
            self.published_epoch = epoch;
        }
        self.views.send_replace(Arc::new(self.core.view()));
        self.gauges.update(&self.core);
    }
}

impl Actor for CoordinatorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.gauges.update(&self.core);
        let every = Duration::from_millis((self.heartbeat_interval_ms / 2).max(10));
        ctx.run_interval(every, |act, _| {
            let now = act.now();
            match act.core.tick(now) {
                Ok(true) => act.commit(),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "failure detection could not rebalance"),
            }
            // Member states also change without a commit (suspect, a returning member).
            act.gauges.update(&act.core);
        });
    }
}

/// A worker's join, on control session generation returned in the reply.
#[derive(Message)]
#[rtype(result = "Result<(Welcome, u64), ErrorReply>")]
pub(crate) struct Join(pub JoinRequest);

impl Handler<Join> for CoordinatorActor {
    type Result = Result<(Welcome, u64), ErrorReply>;

    fn handle(&mut self, msg: Join, _: &mut Self::Context) -> Self::Result {
        let now = self.now();
        let out = self.core.on_join(&msg.0, now)?;
        tracing::info!(member = %msg.0.id, addr = %msg.0.addr, capacity = msg.0.capacity, epoch = self.core.epoch(), "worker joined");
        if out.changed {
            self.commit();
        }
        Ok((
            Welcome {
                view: self.core.view(),
                heartbeat_interval_ms: self.heartbeat_interval_ms,
                failure_timeout_ms: self.failure_timeout_ms,
                lease_ms: crate::Lease::length_for(self.failure_timeout_ms).as_millis() as u64,
            },
            out.session,
        ))
    }
}

/// A heartbeat on a session.
#[derive(Message)]
#[rtype(result = "Result<(HeartbeatAck, bool), ErrorReply>")]
pub(crate) struct Beat {
    pub hb: Heartbeat,
    pub session: u64,
}

impl Handler<Beat> for CoordinatorActor {
    type Result = Result<(HeartbeatAck, bool), ErrorReply>;

    fn handle(&mut self, msg: Beat, _: &mut Self::Context) -> Self::Result {
        let now = self.now();
        self.core.on_heartbeat(&msg.hb, msg.session, now)
    }
}

/// A worker leaves on purpose.
#[derive(Message)]
#[rtype(result = "Result<(), ErrorReply>")]
pub(crate) struct Leave(pub WorkerId, pub u64);

impl Handler<Leave> for CoordinatorActor {
    type Result = Result<(), ErrorReply>;

    fn handle(&mut self, msg: Leave, _: &mut Self::Context) -> Self::Result {
        if self.core.on_leave(&msg.0, msg.1)? {
            tracing::info!(member = %msg.0, epoch = self.core.epoch(), "worker left");
            self.commit();
        }
        Ok(())
    }
}

/// An operator forgets a dead worker (see [`CoordinatorCore::on_forget`]).
#[derive(Message)]
#[rtype(result = "Result<(), ErrorReply>")]
pub(crate) struct Forget(pub WorkerId);

impl Handler<Forget> for CoordinatorActor {
    type Result = Result<(), ErrorReply>;

    fn handle(&mut self, msg: Forget, _: &mut Self::Context) -> Self::Result {
        if self.core.on_forget(&msg.0)? {
            tracing::info!(member = %msg.0, epoch = self.core.epoch(), "dead worker forgotten");
            self.commit();
        }
        Ok(())
    }
}

/// The status report.
#[derive(Message)]
#[rtype(result = "ClusterStatus")]
pub(crate) struct GetStatus;

impl Handler<GetStatus> for CoordinatorActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.status(self.now()))
    }
}

/// Writes the state one last time (at shutdown).
#[derive(Message)]
#[rtype(result = "Result<(), ClusterError>")]
pub(crate) struct Flush;

impl Handler<Flush> for CoordinatorActor {
    type Result = Result<(), ClusterError>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        self.state.save(&self.core.persisted())
    }
}
