//! Operators and sources registered by name, with their port types; builds erased
//! instances from a vertex's config.

use std::collections::BTreeMap;

use crate::data::{PortType, Value};
use crate::instance::{
    DynOperator, DynSource, InstanceConfig, OpBox, OperatorInstance, SourceInstance, SrcBox,
};
use crate::operator::{InitContext, OpError, Operator};
use crate::outputs::Outputs;
use crate::source::Source;
use crate::two_input::{TwoBox, TwoInput};
use crate::StreamError;

type MakeOp = fn(&Value, &InitContext, &InstanceConfig) -> Result<Box<dyn DynOperator>, OpError>;
type MakeSrc = fn(&Value, &InitContext, &InstanceConfig) -> Result<Box<dyn DynSource>, OpError>;

#[derive(Clone, Copy, Debug)]
enum Make {
    Operator(MakeOp),
    Source(MakeSrc),
}

/// What a registered name is.
#[derive(Clone, Copy, Debug)]
pub struct Registered {
    /// Input type (of the first input of a two-input operator); `None` for sources.
    pub input: Option<PortType>,
    /// The second input's type, for a [`crate::TwoInput`] operator (which takes exactly
    /// two inputs); `None` otherwise.
    pub right: Option<PortType>,
    /// Output type.
    pub output: PortType,
    make: Make,
}

impl Registered {
    /// True for sources.
    pub fn is_source(&self) -> bool {
        matches!(self.make, Make::Source(_))
    }
}

/// A running instance of either kind.
pub enum Instance {
    /// An operator with inputs.
    Operator(OperatorInstance),
    /// A source.
    Source(SourceInstance),
}

/// Operators and sources by name.
#[derive(Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, Registered>,
    /// More input types a name accepts (see [`Registry::overload`]).
    overloads: BTreeMap<String, Vec<Registered>>,
    extensions: crate::Extensions,
}

fn config_of<C: serde::de::DeserializeOwned>(config: &Value) -> Result<C, OpError> {
    let v = match config {
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    };
    serde_json::from_value(v).map_err(|e| OpError(format!("bad config: {e}")))
}

fn make_op<O: Operator>(
    config: &Value,
    init: &InitContext,
    inst: &InstanceConfig,
) -> Result<Box<dyn DynOperator>, OpError> {
    let op = O::create(config_of(config)?, init)?;
    Ok(Box::new(OpBox::<O> {
        op,
        out: Outputs::new(inst.outputs.clone(), inst.routing.clone(), inst.batch_size),
    }))
}

fn make_two<J: TwoInput>(
    config: &Value,
    init: &InitContext,
    inst: &InstanceConfig,
) -> Result<Box<dyn DynOperator>, OpError> {
    let op = J::create(config_of(config)?, init)?;
    let out = Outputs::new(inst.outputs.clone(), inst.routing.clone(), inst.batch_size);
    Ok(Box::new(TwoBox::<J>::new(
        op,
        out,
        &inst.input_ports,
        inst.inputs,
    )))
}

fn make_src<S: Source>(
    config: &Value,
    init: &InitContext,
    inst: &InstanceConfig,
) -> Result<Box<dyn DynSource>, OpError> {
    let src = S::create(config_of(config)?, init)?;
    Ok(Box::new(SrcBox::<S> {
        src,
        out: Outputs::new(inst.outputs.clone(), inst.routing.clone(), inst.batch_size),
    }))
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers an operator under `name` (replacing any earlier one).
    pub fn operator<O: Operator>(&mut self, name: &str) -> &mut Self {
        self.entries.insert(
            name.to_owned(),
            Registered {
                input: Some(PortType::of::<O::In>()),
                right: None,
                output: PortType::of::<O::Out>(),
                make: Make::Operator(make_op::<O>),
            },
        );
        self
    }

    /// Registers `O` as another version of the operator `name` for records of type
    /// `O::In` (a sink of typed records next to the one for JSON, say): a vertex whose
    /// upstream produces `O::In` runs `O`, any other runs the operator registered with
    /// [`Registry::operator`]. Its output type must be that operator's (it is ignored
    /// otherwise, or when no operator `name` is registered).
    pub fn overload<O: Operator>(&mut self, name: &str) -> &mut Self {
        let entry = Registered {
            input: Some(PortType::of::<O::In>()),
            right: None,
            output: PortType::of::<O::Out>(),
            make: Make::Operator(make_op::<O>),
        };
        let list = self.overloads.entry(name.to_owned()).or_default();
        list.retain(|e| {
            !e.input
                .is_some_and(|i| entry.input.is_some_and(|n| i.same_as(&n)))
        });
        list.push(entry);
        self
    }

    /// Registers a two-input operator under `name`: its vertex takes exactly two
    /// inputs, the first of type `J::Left`, the second of type `J::Right`.
    pub fn two_input<J: TwoInput>(&mut self, name: &str) -> &mut Self {
        self.entries.insert(
            name.to_owned(),
            Registered {
                input: Some(PortType::of::<J::Left>()),
                right: Some(PortType::of::<J::Right>()),
                output: PortType::of::<J::Out>(),
                make: Make::Operator(make_two::<J>),
            },
        );
        self
    }

    /// Registers a source under `name`.
    pub fn source<S: Source>(&mut self, name: &str) -> &mut Self {
        self.entries.insert(
            name.to_owned(),
            Registered {
                input: None,
                right: None,
                output: PortType::of::<S::Out>(),
                make: Make::Source(make_src::<S>),
            },
        );
        self
    }

    /// Provides a shared service to every operator built from this registry (found with
    /// `init.extensions.get::<T>()`).
    pub fn provide<T: Send + Sync + 'static>(&mut self, value: T) -> &mut Self {
        self.extensions.insert(value);
        self
    }

    /// The services provided so far.
    pub fn extensions(&self) -> &crate::Extensions {
        &self.extensions
    }

    /// The entry registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.entries.get(name)
    }

    /// The entry of `name` for records of type `input` from upstream: an
    /// [overload](Registry::overload) for that type, or else the entry of `name`.
    pub fn get_for(&self, name: &str, input: Option<&PortType>) -> Option<&Registered> {
        let primary = self.entries.get(name)?;
        let Some(input) = input else {
            return Some(primary);
        };
        if primary.input.is_none_or(|i| i.same_as(input)) {
            return Some(primary);
        }
        self.overloads
            .get(name)
            .and_then(|list| {
                list.iter().find(|e| {
                    e.input.is_some_and(|i| i.same_as(input)) && e.output.same_as(&primary.output)
                })
            })
            .or(Some(primary))
    }

    /// Every registered name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Builds an instance with `init.validate_only` set and drops it: checks the config.
    pub fn check_config(
        &self,
        name: &str,
        config: &Value,
        init: &InitContext,
    ) -> Result<(), OpError> {
        self.check_config_for(name, None, config, init)
    }

    /// [`Registry::check_config`] of the entry for records of type `input` (see
    /// [`Registry::get_for`]).
    pub fn check_config_for(
        &self,
        name: &str,
        input: Option<&PortType>,
        config: &Value,
        init: &InitContext,
    ) -> Result<(), OpError> {
        let entry = self
            .get_for(name, input)
            .ok_or_else(|| OpError(format!("unknown operator '{name}'")))?;
        let mut init = init.clone();
        init.validate_only = true;
        init.extensions = self.extensions.clone();
        let inst = InstanceConfig {
            vertex: init.vertex.clone(),
            instance: init.instance,
            inputs: 0,
            input_ports: Vec::new(),
            outputs: Vec::new(),
            routing: None,
            batch_size: 1,
            linger_ms: 0,
            idle_timeout_ms: 0,
        };
        match entry.make {
            Make::Operator(f) => f(config, &init, &inst).map(drop),
            Make::Source(f) => f(config, &init, &inst).map(drop),
        }
    }

    /// Builds a running instance of `name`.
    pub fn instantiate(
        &self,
        name: &str,
        config: &Value,
        init: &InitContext,
        inst: InstanceConfig,
        now: u64,
    ) -> Result<Instance, StreamError> {
        self.instantiate_for(name, None, config, init, inst, now)
    }

    /// Builds a running instance of the entry of `name` for records of type `input`
    /// (see [`Registry::get_for`]).
    pub fn instantiate_for(
        &self,
        name: &str,
        input: Option<&PortType>,
        config: &Value,
        init: &InitContext,
        inst: InstanceConfig,
        now: u64,
    ) -> Result<Instance, StreamError> {
        let fail = |reason: String| StreamError::Operator {
            vertex: inst.vertex.clone(),
            reason,
        };
        let entry = self
            .get_for(name, input)
            .ok_or_else(|| fail(format!("unknown operator '{name}'")))?;
        let mut init = init.clone();
        init.extensions = self.extensions.clone();
        let init = &init;
        match entry.make {
            Make::Operator(f) => {
                let op = f(config, init, &inst).map_err(|e| fail(e.0))?;
                Ok(Instance::Operator(OperatorInstance::new(inst, op)))
            }
            Make::Source(f) => {
                let src = f(config, init, &inst).map_err(|e| fail(e.0))?;
                Ok(Instance::Source(SourceInstance::new(inst, src, now)))
            }
        }
    }
}
