"""API tokens (admin only). A new token's secret is in the creation response and nowhere else, ever."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.server.auth import Principal, require
from modelyard.server.responses import CreatedToken, Token, TokenList, documented
from modelyard.store.tokens import TokenStore

router = APIRouter(tags=["tokens"])


class CreateToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(viewer|editor|admin)$", description="viewer, editor or admin")


@router.post("/tokens", status_code=201, responses=documented(CreatedToken, 413, 422, status=201))
def create_token(body: CreateToken, request: Request, principal: Principal = Depends(require("admin"))):
    info, secret = TokenStore(request.app.state.workspace.engine).create(body.name, body.role, principal.name)
    return {"schema": "modelyard.token/1", **info.to_dict(), "token": secret}


@router.get("/tokens", responses=documented(TokenList))
def list_tokens(request: Request, _: Principal = Depends(require("admin"))):
    items = TokenStore(request.app.state.workspace.engine).list()
    return {"schema": "modelyard.token-list/1", "items": [info.to_dict() for info in items]}


@router.delete("/tokens/{token_id}", responses=documented(Token, 404, 409))
def revoke_token(token_id: str, request: Request, _: Principal = Depends(require("admin"))):
    """Revoke a token: the API refuses it at once, and so does every service replica (see docs/registry-and-serving)."""
    from modelyard.deploy.state import note_token_revoked

    workspace = request.app.state.workspace
    revoked = TokenStore(workspace.engine).revoke(token_id)
    note_token_revoked(workspace.home)
    return {"schema": "modelyard.token/1", **revoked.to_dict()}
