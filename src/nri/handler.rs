//! The boundary between the NRI transport and the program: the `Handler` trait it calls.

use async_trait::async_trait;

use super::types::{Adjustment, ConfigureInfo, Container, Event, EventSet, PodSandbox, Validation};

/// A refusal to let a container be created; the runtime fails the creation with `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub message: String,
    /// The decision's case (`incompatible`, `invalid-spec`, ...), for logs and tests.
    pub case: &'static str,
}

impl Rejection {
    pub fn new(message: impl Into<String>) -> Rejection {
        Rejection {
            message: message.into(),
            case: "",
        }
    }

    pub fn with_case(mut self, case: &'static str) -> Rejection {
        self.case = case;
        self
    }
}

/// A failure of the handler's Configure; the runtime then drops the connection.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl HandlerError {
    pub fn new(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
            source: None,
        }
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for HandlerError {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        HandlerError {
            message: e.to_string(),
            source: Some(e),
        }
    }
}

/// What the plugin does on each NRI request. Requests run concurrently (one task each), so
/// a slow call delays only its own request; but the runtime gives each request only
/// [`ConfigureInfo::effective_request_timeout`]. When that passes, the call's future is
/// dropped (the runtime sent the deadline along) and the runtime goes on without the plugin:
/// on CreateContainer it then disconnects the plugin and creates the container unchecked.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The events to subscribe to. Events the runtime does not know (ValidateContainerAdjustment
    /// before NRI 0.10) are left out of the subscription automatically.
    fn events(&self) -> EventSet {
        [Event::CreateContainer].into_iter().collect()
    }

    /// Called on every (re)connection, after registration. An error fails the registration;
    /// an external plugin then retries with backoff, a pre-launched one exits.
    async fn configure(&self, cfg: ConfigureInfo) -> Result<(), HandlerError>;

    /// Every pod and container the runtime has, once per connection after Configure
    /// (reassembled when the runtime splits it). Runs in its own task: the runtime is answered
    /// at once, and requests that follow may arrive before this returns. Not guaranteed:
    /// containerd 1.7 (NRI 0.6) never synchronizes the plugins it launches itself.
    async fn synchronize(&self, pods: Vec<PodSandbox>, containers: Vec<Container>);

    /// Decides on a container being created: the adjustment to apply, or a rejection whose
    /// message the runtime returns as the creation error.
    async fn create_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<Adjustment, Rejection>;

    /// ValidateContainerAdjustment (NRI >= 0.10, only when subscribed): the last word on a
    /// container, after all plugins adjusted it. Unlike CreateContainer, a timeout here fails
    /// the creation.
    async fn validate(&self, _validation: &Validation) -> Result<(), Rejection> {
        Ok(())
    }

    /// Any other subscribed event (pod/container lifecycle); informational only.
    async fn event(
        &self,
        _event: Event,
        _pod: Option<&PodSandbox>,
        _container: Option<&Container>,
    ) {
    }

    /// The runtime announced it is shutting down, or the plugin is stopping for good.
    async fn shutdown(&self) {}
}
