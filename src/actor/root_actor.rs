//! The root of the tree: supervises the breaker actors.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

/// The tree's root. It has no work of its own; it exists so that every
/// breaker actor has a supervisor that outlives it and logs its fate.
pub(crate) struct RootActor;

impl Actor for RootActor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<()>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        event: SupervisionEvent,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        // Overridden so one breaker actor's exit never stops the tree.
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::error!(actor = %cell.get_id(), %error, "breaker actor failed");
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                tracing::debug!(actor = %cell.get_id(), ?reason, "breaker actor stopped");
            }
            _ => {}
        }
        Ok(())
    }
}
