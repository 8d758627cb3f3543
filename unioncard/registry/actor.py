"""Who is acting: a user (scoped to an organisation's subtree) or the system itself."""

from __future__ import annotations

from dataclasses import dataclass

from unioncard.registry.domain import Permission, Role, has_permission, in_scope


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    login: str
    role: str
    scope_path: str
    organisation_id: int | None = None

    @classmethod
    def system(cls, name: str = "system") -> "Actor":
        return cls(user_id=None, login=name, role=Role.ADMIN, scope_path="/")

    @classmethod
    def member(cls, person_id: int) -> "Actor":
        """A member acting on their own data from their page: no role, no organisation in scope
        (the member services check that the data is theirs)."""
        return cls(user_id=None, login=f"member:{person_id}", role="member", scope_path="/member/")

    def is_member(self, person_id: int) -> bool:
        """This is the member ``person_id`` acting on their own data."""
        return self.role == "member" and self.login == f"member:{person_id}"

    def can(self, permission: Permission) -> bool:
        return has_permission(self.role, permission)

    def sees(self, path: str) -> bool:
        return in_scope(self.scope_path, path)
