//! Who may do what in the admin API: roles, where things sit in the hierarchy, and the one
//! decision every admin endpoint asks for.
//!
//! A decision has two halves. The role's *capability* says whether the role may read or write a
//! kind of resource at all (an auditor never writes, a member never sees teams). The actor's
//! *reach* says whether the particular target sits inside the part of the hierarchy the actor
//! was given (a team admin reaches its own team only). Both must allow. Listings ask the first
//! half only and then filter their rows with [`Actor::reaches`].

use crate::policy::{BudgetPeriod, BudgetSpec};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A role of an admin credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the organisation.
    OrgAdmin,
    /// Everything inside one workspace, except creating workspaces.
    WorkspaceAdmin,
    /// One team's users, keys, policies and credentials, within the caps above it.
    TeamAdmin,
    /// One user's own keys and usage.
    Member,
    /// Reads everything, writes nothing.
    Auditor,
}

impl Role {
    /// Every role, from most to least powerful (the auditor last: it is read-only).
    pub const ALL: [Role; 5] = [
        Role::OrgAdmin,
        Role::WorkspaceAdmin,
        Role::TeamAdmin,
        Role::Member,
        Role::Auditor,
    ];

    /// The role as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrgAdmin => "org_admin",
            Role::WorkspaceAdmin => "workspace_admin",
            Role::TeamAdmin => "team_admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role '{s}' (org_admin, workspace_admin, team_admin, member, auditor)"
                )
            })
    }
}

/// Where an entity sits: the workspace, team and user it belongs to. All `None` is the
/// organisation itself (org-wide things such as workspaces' parent, org policies, org
/// credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Place {
    pub workspace_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
}

impl Place {
    /// The organisation as a whole.
    pub fn org() -> Place {
        Place::default()
    }

    /// A workspace (or something directly in it).
    pub fn workspace(id: impl Into<String>) -> Place {
        Place {
            workspace_id: Some(id.into()),
            ..Place::default()
        }
    }

    /// A team of a workspace (or something directly in it).
    pub fn team(workspace_id: impl Into<String>, team_id: impl Into<String>) -> Place {
        Place {
            workspace_id: Some(workspace_id.into()),
            team_id: Some(team_id.into()),
            user_id: None,
        }
    }
}

/// The kinds of things the admin API manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Workspace,
    Team,
    User,
    /// Gateway keys, user and service keys alike.
    Key,
    /// Admin credentials.
    Admin,
    Policy,
    /// Provider credentials held by the gateway.
    Credential,
    /// The request journal and spend reports.
    Usage,
    /// The admin audit log.
    Audit,
}

impl Resource {
    /// The plural noun used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Resource::Workspace => "workspaces",
            Resource::Team => "teams",
            Resource::User => "users",
            Resource::Key => "gateway keys",
            Resource::Admin => "admin credentials",
            Resource::Policy => "policies",
            Resource::Credential => "provider credentials",
            Resource::Usage => "usage (requests and spend)",
            Resource::Audit => "the audit log",
        }
    }
}

/// Reading or changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Read,
    Write,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Read => "read",
            Verb::Write => "write",
        }
    }
}

/// Whoever calls the admin API, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The admin credential's id (or the gateway key's id when a member uses its key).
    pub id: String,
    /// The credential's name, for the audit log.
    pub name: String,
    pub role: Role,
    /// What the role was given: a workspace, a team or a user. Empty for org admins and
    /// auditors.
    pub place: Place,
    /// The given place in words (e.g. `team platform`), for messages.
    pub scope_label: String,
}

impl Actor {
    /// The role and its scope in words, e.g. `team_admin of team platform`.
    pub fn describe(&self) -> String {
        if self.scope_label.is_empty() {
            self.role.to_string()
        } else {
            format!("{} of {}", self.role, self.scope_label)
        }
    }

    /// Whether `target` lies inside the part of the hierarchy this actor was given, for
    /// reading (`Verb::Read`) or changing (`Verb::Write`).
    pub fn reaches(&self, verb: Verb, target: &Place) -> bool {
        let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
        match self.role {
            Role::OrgAdmin | Role::Auditor => true,
            Role::WorkspaceAdmin => same(&target.workspace_id, &self.place.workspace_id),
            Role::TeamAdmin => same(&target.team_id, &self.place.team_id),
            // A member may read everything of its own, but may only create keys billed to its
            // own team, so a member cannot spend another team's budget.
            Role::Member => {
                same(&target.user_id, &self.place.user_id)
                    && (verb == Verb::Read || target.team_id == self.place.team_id)
            }
        }
    }

    /// Which roles this actor may hand out in new admin credentials: never more than its own.
    pub fn may_grant(&self, role: Role) -> bool {
        match self.role {
            Role::OrgAdmin => true,
            Role::WorkspaceAdmin => {
                matches!(role, Role::WorkspaceAdmin | Role::TeamAdmin | Role::Member)
            }
            Role::TeamAdmin => matches!(role, Role::TeamAdmin | Role::Member),
            Role::Member | Role::Auditor => false,
        }
    }
}

/// The outcome of an authorisation question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused, with a message naming the role and what it lacks.
    Deny(String),
}

impl Decision {
    /// True when allowed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// `Ok(())` when allowed, else the refusal message.
    pub fn into_result(self) -> Result<(), String> {
        match self {
            Decision::Allow => Ok(()),
            Decision::Deny(m) => Err(m),
        }
    }
}

/// What a role may do with a kind of resource anywhere in its reach (the role matrix).
pub fn capability(role: Role, resource: Resource, verb: Verb) -> bool {
    use Resource as R;
    match role {
        Role::OrgAdmin => true,
        Role::Auditor => verb == Verb::Read,
        Role::WorkspaceAdmin => !(resource == R::Workspace && verb == Verb::Write),
        Role::TeamAdmin => match resource {
            R::Workspace => false,
            R::Team | R::Usage | R::Audit => verb == Verb::Read,
            R::User | R::Key | R::Admin | R::Policy | R::Credential => true,
        },
        Role::Member => match resource {
            R::Key => true,
            R::Usage => verb == Verb::Read,
            _ => false,
        },
    }
}

fn role_lacks(actor: &Actor, verb: Verb, resource: Resource) -> String {
    let why = match actor.role {
        Role::Auditor => "an auditor is read-only",
        Role::Member => "a member manages only its own gateway keys and reads its own usage",
        Role::TeamAdmin => {
            "a team admin manages its own team's users, keys, policies and credentials"
        }
        Role::WorkspaceAdmin => "only an org admin creates workspaces",
        Role::OrgAdmin => "",
    };
    format!(
        "permission denied: {} may not {} {} ({why})",
        actor.describe(),
        verb.as_str(),
        resource.noun()
    )
}

/// May `actor` `verb` `resource` anywhere at all? Asked before looking a target up, so a role
/// that can never write something is told so without learning whether the target exists.
pub fn authorize_capability(actor: &Actor, verb: Verb, resource: Resource) -> Decision {
    if capability(actor.role, resource, verb) {
        Decision::Allow
    } else {
        Decision::Deny(role_lacks(actor, verb, resource))
    }
}

/// May `actor` list `resource` at all? Rows are then filtered with [`Actor::reaches`].
pub fn authorize_list(actor: &Actor, resource: Resource) -> Decision {
    authorize_capability(actor, Verb::Read, resource)
}

/// The one authorisation decision: may `actor` `verb` the `resource` that sits at `target`
/// (`target_label` names it in the refusal)?
pub fn authorize(
    actor: &Actor,
    verb: Verb,
    resource: Resource,
    target: &Place,
    target_label: &str,
) -> Decision {
    if !capability(actor.role, resource, verb) {
        return Decision::Deny(role_lacks(actor, verb, resource));
    }
    if actor.reaches(verb, target) {
        return Decision::Allow;
    }
    let reach = match actor.role {
        Role::WorkspaceAdmin => "its own workspace",
        Role::TeamAdmin => "its own team",
        Role::Member => "its own keys and usage",
        Role::OrgAdmin | Role::Auditor => "everything",
    };
    Decision::Deny(format!(
        "permission denied: {} may not {} {target_label}: it reaches only {reach}",
        actor.describe(),
        verb.as_str(),
    ))
}

/// May `actor` create an admin credential with `role` placed at `target`?
pub fn authorize_grant(actor: &Actor, role: Role, target: &Place, target_label: &str) -> Decision {
    let d = authorize(actor, Verb::Write, Resource::Admin, target, target_label);
    if !d.allowed() {
        return d;
    }
    if actor.may_grant(role) {
        Decision::Allow
    } else {
        Decision::Deny(format!(
            "permission denied: {} may not grant the role {role}: a credential never gets more than its creator's role",
            actor.describe()
        ))
    }
}

/// A budget cap written above the actor (an org policy, or its workspace's policy for a team
/// admin).
#[derive(Debug, Clone, PartialEq)]
pub struct Cap {
    /// Where the cap comes from, e.g. `workspace cap (policy eng-monthly, workspace:eng)`.
    pub label: String,
    pub period: BudgetPeriod,
    pub amount_usd: f64,
}

/// A team or workspace admin may not grant a budget larger than a cap set above it for the
/// same period; org admins are not capped. Budgets of other periods are not compared: a daily
/// and a monthly cap limit different things.
pub fn within_caps(actor: &Actor, budgets: &[BudgetSpec], caps: &[Cap], target: &str) -> Decision {
    if actor.role == Role::OrgAdmin {
        return Decision::Allow;
    }
    for b in budgets {
        if let Some(cap) = caps
            .iter()
            .filter(|c| c.period == b.period)
            .min_by(|a, b| a.amount_usd.total_cmp(&b.amount_usd))
            && b.amount_usd > cap.amount_usd
        {
            return Decision::Deny(format!(
                "permission denied: {} may not set a {} budget of ${:.2} for {target}: above the {} of ${:.2}",
                actor.describe(),
                period_name(b.period),
                b.amount_usd,
                cap.label,
                cap.amount_usd
            ));
        }
    }
    Decision::Allow
}

fn period_name(p: BudgetPeriod) -> &'static str {
    match p {
        BudgetPeriod::Day => "daily",
        BudgetPeriod::Week => "weekly",
        BudgetPeriod::Month => "monthly",
        BudgetPeriod::Total => "total",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role, place: Place) -> Actor {
        Actor {
            id: "adm_1".into(),
            name: "t".into(),
            role,
            place,
            scope_label: String::new(),
        }
    }

    fn member() -> Actor {
        actor(
            Role::Member,
            Place {
                workspace_id: Some("ws_a".into()),
                team_id: Some("team_a".into()),
                user_id: Some("usr_a".into()),
            },
        )
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn reach_follows_the_hierarchy() {
        let in_a = Place::team("ws_a", "team_a");
        let in_b = Place::team("ws_a", "team_b");
        let ws = actor(Role::WorkspaceAdmin, Place::workspace("ws_a"));
        let team = actor(Role::TeamAdmin, Place::team("ws_a", "team_a"));
        assert!(ws.reaches(Verb::Write, &in_a) && ws.reaches(Verb::Write, &in_b));
        assert!(!ws.reaches(Verb::Write, &Place::workspace("ws_b")));
        assert!(!ws.reaches(Verb::Write, &Place::org()));
        assert!(team.reaches(Verb::Write, &in_a));
        assert!(!team.reaches(Verb::Write, &in_b));
        assert!(!team.reaches(Verb::Write, &Place::workspace("ws_a")));
        let own = Place {
            user_id: Some("usr_a".into()),
            ..in_a.clone()
        };
        let own_elsewhere = Place {
            user_id: Some("usr_a".into()),
            ..in_b.clone()
        };
        assert!(member().reaches(Verb::Write, &own));
        assert!(member().reaches(Verb::Read, &own_elsewhere));
        assert!(!member().reaches(Verb::Write, &own_elsewhere));
    }

    #[test]
    fn denials_name_the_role_and_what_it_lacks() {
        let audit = actor(Role::Auditor, Place::org());
        let d = authorize(&audit, Verb::Write, Resource::Team, &Place::org(), "x");
        let Decision::Deny(m) = d else {
            panic!("auditor wrote")
        };
        assert!(m.contains("auditor") && m.contains("read-only"), "{m}");
        assert!(authorize(&audit, Verb::Read, Resource::Audit, &Place::org(), "x").allowed());
        let team = Actor {
            scope_label: "team platform".into(),
            ..actor(Role::TeamAdmin, Place::team("ws_a", "team_a"))
        };
        let Decision::Deny(m) = authorize(
            &team,
            Verb::Write,
            Resource::Policy,
            &Place::workspace("ws_a"),
            "policy workspace:eng",
        ) else {
            panic!("team admin wrote a workspace policy")
        };
        assert!(m.contains("team_admin of team platform"), "{m}");
        assert!(!authorize_list(&member(), Resource::Team).allowed());
        assert!(authorize_list(&member(), Resource::Key).allowed());
    }

    #[test]
    fn nobody_grants_more_than_it_has() {
        let team = actor(Role::TeamAdmin, Place::team("ws_a", "team_a"));
        let target = Place::team("ws_a", "team_a");
        assert!(authorize_grant(&team, Role::Member, &target, "x").allowed());
        assert!(!authorize_grant(&team, Role::WorkspaceAdmin, &target, "x").allowed());
        let ws = actor(Role::WorkspaceAdmin, Place::workspace("ws_a"));
        assert!(!authorize_grant(&ws, Role::Auditor, &Place::workspace("ws_a"), "x").allowed());
        assert!(!authorize_grant(&ws, Role::OrgAdmin, &Place::workspace("ws_a"), "x").allowed());
    }

    #[test]
    fn budgets_stay_under_the_caps_above() {
        let team = actor(Role::TeamAdmin, Place::team("ws_a", "team_a"));
        let budget = |p, usd| BudgetSpec {
            period: p,
            amount_usd: usd,
            timezone: None,
            mode: Default::default(),
            enforcement: Default::default(),
            alert_thresholds: vec![],
            downgrade: None,
        };
        let caps = [
            Cap {
                label: "workspace cap".into(),
                period: BudgetPeriod::Month,
                amount_usd: 500.0,
            },
            Cap {
                label: "org cap".into(),
                period: BudgetPeriod::Month,
                amount_usd: 1000.0,
            },
        ];
        assert!(
            within_caps(
                &team,
                &[budget(BudgetPeriod::Month, 500.0)],
                &caps,
                "team:a"
            )
            .allowed()
        );
        assert!(
            within_caps(&team, &[budget(BudgetPeriod::Day, 5000.0)], &caps, "team:a").allowed()
        );
        let Decision::Deny(m) = within_caps(
            &team,
            &[budget(BudgetPeriod::Month, 600.0)],
            &caps,
            "team:a",
        ) else {
            panic!("above the cap")
        };
        assert!(m.contains("workspace cap of $500.00"), "{m}");
        let org = actor(Role::OrgAdmin, Place::org());
        assert!(
            within_caps(
                &org,
                &[budget(BudgetPeriod::Month, 9000.0)],
                &caps,
                "team:a"
            )
            .allowed()
        );
    }
}
