//! "Three models" has one spelling in the crate: [`PerModel`] (`base`, `rft`, `small`) with
//! `map`/`zip`, used by the engine, the session plan, preflight, config, placement and bench,
//! and [`Role`] to name one of them. It depends on nothing, so every layer can use it.

/// Which model of the trio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The large model that is steered.
    Base,
    /// The small reinforcement-fine-tuned reasoner.
    Rft,
    /// The RFT model's own untuned base.
    Small,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Base, Role::Rft, Role::Small];

    /// "base", "rft", "small": as config keys, JSON keys and messages spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Base => "base",
            Role::Rft => "rft",
            Role::Small => "small",
        }
    }

    /// The command-line flag that names this model ("--base").
    pub fn flag(self) -> &'static str {
        match self {
            Role::Base => "--base",
            Role::Rft => "--rft",
            Role::Small => "--small",
        }
    }
}

/// One value per model of the trio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PerModel<T> {
    pub base: T,
    pub rft: T,
    pub small: T,
}

impl<T> PerModel<T> {
    pub fn new(base: T, rft: T, small: T) -> Self {
        PerModel { base, rft, small }
    }

    /// Builds each value from its role.
    pub fn from_fn(mut f: impl FnMut(Role) -> T) -> Self {
        PerModel { base: f(Role::Base), rft: f(Role::Rft), small: f(Role::Small) }
    }

    pub fn get(&self, role: Role) -> &T {
        match role {
            Role::Base => &self.base,
            Role::Rft => &self.rft,
            Role::Small => &self.small,
        }
    }

    pub fn as_ref(&self) -> PerModel<&T> {
        PerModel { base: &self.base, rft: &self.rft, small: &self.small }
    }

    pub fn as_mut(&mut self) -> PerModel<&mut T> {
        PerModel { base: &mut self.base, rft: &mut self.rft, small: &mut self.small }
    }

    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerModel<U> {
        PerModel { base: f(self.base), rft: f(self.rft), small: f(self.small) }
    }

    /// `map` that also gets each value's role.
    pub fn map_with_role<U>(self, mut f: impl FnMut(Role, T) -> U) -> PerModel<U> {
        PerModel { base: f(Role::Base, self.base), rft: f(Role::Rft, self.rft), small: f(Role::Small, self.small) }
    }

    /// `map` with a fallible function, stopping at the first error (base, rft, small order).
    pub fn try_map<U, E>(self, mut f: impl FnMut(Role, T) -> std::result::Result<U, E>) -> std::result::Result<PerModel<U>, E> {
        Ok(PerModel { base: f(Role::Base, self.base)?, rft: f(Role::Rft, self.rft)?, small: f(Role::Small, self.small)? })
    }

    pub fn zip<U>(self, other: PerModel<U>) -> PerModel<(T, U)> {
        PerModel { base: (self.base, other.base), rft: (self.rft, other.rft), small: (self.small, other.small) }
    }

    /// The values in base, rft, small order.
    pub fn into_array(self) -> [T; 3] {
        [self.base, self.rft, self.small]
    }

    /// (role, value) in base, rft, small order.
    pub fn iter(&self) -> impl Iterator<Item = (Role, &T)> {
        [(Role::Base, &self.base), (Role::Rft, &self.rft), (Role::Small, &self.small)].into_iter()
    }

    /// Whether the three values are equal (a summary can then print one).
    pub fn all_equal(&self) -> bool
    where
        T: PartialEq,
    {
        self.base == self.rft && self.rft == self.small
    }
}
