"""Request and response bodies of the HTTP API, as pydantic models (they are the OpenAPI spec).

Constraints the service enforces are in the schema too (id lengths, non-blank ids, valid
UTF-8, finite numbers, timestamp range), so a request the spec allows is one the service
can take, and a response always matches its documented model. Response models allow
extra keys: a model-specific field added later does not break clients or the spec.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from fusionrec.serve.limits import utf8_text

MAX_ID_CHARS = 256
# unix seconds; 2100-01-01 bounds absurd values (1e300) that no clock produces
MAX_TIMESTAMP = 4_102_444_800.0

Text = Annotated[str, AfterValidator(utf8_text)]
IdStr = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=r"\S"),
                  AfterValidator(utf8_text)]
IdInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Id = Annotated[IdStr | IdInt, Field(description="an id; numbers are treated as their decimal text")]
AttrKey = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(utf8_text)]
AttrValue = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(utf8_text)] | bool | int | \
    Annotated[float, Field(allow_inf_nan=False)] | None


# ---------------------------------------------------------------------- request bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    user_id: Id = Field(description="the acting user (new ids are accepted: they become online users)")
    item_id: Id = Field(description="an item of the catalogue")
    type: Annotated[Text, StringConstraints(max_length=64)] = Field(
        "click", description="event type; see online.event_weights in the serve config")
    timestamp: Annotated[float, Field(ge=0.0, le=MAX_TIMESTAMP, allow_inf_nan=False)] | None = Field(
        None, description="unix seconds (0 .. 2100-01-01); default: time received")
    event_id: Annotated[Text, StringConstraints(max_length=128)] | None = Field(
        None, description="client id for idempotent retries")


class EventsIn(_Body):
    events: list[EventIn] = Field(min_length=1)


class ItemIn(_Body):
    item_id: Id
    text: Annotated[Text, StringConstraints(max_length=20_000)] | None = Field(
        None, description="free text (description, overview)")
    image_base64: Annotated[str, StringConstraints(max_length=16 * 1024 * 1024)] | None = Field(
        None, description="image file bytes, base64")
    image_path: Annotated[Text, StringConstraints(max_length=1024)] | None = Field(
        None, description="image file path under the media root")
    audio_path: Annotated[Text, StringConstraints(max_length=1024)] | None = Field(
        None, description="audio file path under the media root")
    attributes: dict[AttrKey, AttrValue] = Field(
        default_factory=dict, description="e.g. title, genres, year; typed like the catalogue's columns")


class ItemsIn(_Body):
    items: list[ItemIn] = Field(min_length=1)


class RecommendIn(_Body):
    items: list[Id] = Field(default_factory=list, max_length=1000, description="items the user touched")
    text: Annotated[Text, StringConstraints(max_length=10_000)] | None = Field(None, description="free-text query")
    k: int = Field(10, ge=1)
    exclude_seen: bool = True
    filters: Annotated[Text, StringConstraints(max_length=1000)] | None = None
    attributes: dict[AttrKey, AttrValue] | None = Field(
        None, max_length=100, description="a new user's attributes (e.g. age, gender, occupation) for a model "
        "with a user attribute tower (two_tower user_attributes); combined with items and text")


def bounded_requests(event_types: list[str], max_k: int, max_events: int, max_items: int
                     ) -> tuple[type[EventsIn], type[ItemsIn], type[RecommendIn]]:
    """The request bodies with this server's limits in their schema: event types as an enum,
    ``k`` up to ``max_k``, batch sizes up to the configured maxima."""
    from typing import Literal

    from pydantic import create_model

    types = Literal.__getitem__(tuple(event_types))  # type: ignore[attr-defined]
    event = create_model("EventIn", __base__=EventIn, __doc__=EventIn.__doc__,
                         type=(types, Field("click" if "click" in event_types else event_types[0],
                                            description="event type (online.event_weights in the serve config)")))
    events = create_model("EventsIn", __base__=EventsIn, __doc__=EventsIn.__doc__,
                          events=(list[event], Field(min_length=1, max_length=max_events)))
    items = create_model("ItemsIn", __base__=ItemsIn, __doc__=ItemsIn.__doc__,
                         items=(list[ItemIn], Field(min_length=1, max_length=max_items)))
    recommend = create_model("RecommendIn", __base__=RecommendIn, __doc__=RecommendIn.__doc__,
                             k=(int, Field(10, ge=1, le=max_k)))
    return events, items, recommend


# ---------------------------------------------------------------------- responses
class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorOut(_Out):
    error: str = Field(description="what is wrong")
    field: str | None = Field(None, description="where: the request field, header or parameter")
    fix: str | None = Field(None, description="how to fix it")
    details: list[dict[str, Any]] | None = None


class ScoredItem(_Out):
    item_id: str
    score: float
    title: str | None = None
    cold: bool = Field(False, description="true: placed by content, no interactions yet")


class RecommendationsOut(_Out):
    user_id: str | None = None
    k: int
    items: list[ScoredItem]
    user_state: str | None = Field(None, description="trained, online or trained+online")
    search: str
    model_version: int


class SimilarOut(_Out):
    item_id: str
    k: int
    items: list[ScoredItem]
    metric: str
    search: str
    model_version: int


class ItemProfileOut(_Out):
    item_id: str
    title: str | None = None
    attributes: dict[str, Any]
    popularity: int
    cold: bool
    modalities: dict[str, bool]
    similar: list[ScoredItem] | None = None


class PostedItem(_Out):
    item_id: str
    created: bool
    cold: bool


class ItemsOut(_Out):
    items: list[PostedItem]
    n_items: int


class EventsOut(_Out):
    accepted: int
    seqs: list[int] = Field(description="store sequence number of each event (a retried event_id keeps its first)")


class DrivingItem(_Out):
    item_id: str
    title: str | None = None
    similarity: float
    weight: float


class ExplanationOut(_Out):
    user_id: str
    item_id: str
    score: float
    user_state: str
    modality_contributions: dict[str, Any]
    because_of: list[DrivingItem]
    model_version: int


class AttributeShare(_Out):
    value: str
    share: float
    lift: float


class RepresentativeItem(_Out):
    item_id: str
    title: str | None = None
    score: float


class UserProfileOut(_Out):
    user_id: str
    n_history: int
    n_online_events: int
    top_attributes: dict[str, list[AttributeShare]]
    user_state: str | None = None
    representative_items: list[RepresentativeItem] | None = None
    modality_drive: dict[str, float] | None = None


class ForgetOut(_Out):
    user_id: str
    deleted_events: int
    forgotten: bool
    retrain: str = Field(description="started, queued, off (retrain_after_forget: false) or unavailable")
    versions_removed: list[str] = Field(description="older model versions deleted because they held the user")


class RetrainStatusOut(_Out):
    running: bool
    pending: bool = Field(False, description="another retrain will start when this one ends (after a forget)")
    last: float | None = Field(None, description="unix time the last retrain finished")
    error: str | None = None
    count: int
    seconds: float | None = None
    served_version: str | None = None


class RetrainStartedOut(_Out):
    started: bool
    status: RetrainStatusOut


class HealthOut(_Out):
    status: str
    model: str
    model_version: int = Field(description="increments at every swap of the served state")
    served_version: str = Field(description="'base' (--model) or the retrained version (v2, v3, ...)")
    retrained_available: str | None = Field(None, description="a newer retrained version not served")
    n_users: int
    n_items: int
    index: str
    online_users: int
    events_ingested: int
    retrain: RetrainStatusOut
    uptime_seconds: float
