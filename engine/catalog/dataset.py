# Over 400 lines: split pending: issue 15 (path templates and lifecycle vs. document bodies).
"""Pure builders of catalog documents: one scan ↦ one SciCat-shaped dataset.

Both catalogs (the local TinyDB file and SciCat) keep *the same* documents, built here from a
`Scan`, its `Location`s and the `[catalog]` config. That is what makes the offline-first path work:
a beamline can run with `kind = "local"` and later back-fill SciCat from the local documents
without losing a field. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import posixpath
import re
import string
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.catalog.base import Location
from engine.config import CatalogConfig
from engine.errors import ConfigError, TerminalError
from engine.model import Level, Scan, ScanFile

# Fixed forever: changing it would give every scan a new pid and duplicate the whole catalog.
PID_NAMESPACE = uuid.UUID("6f0c2c55-93a1-4d0e-9b31-0b1a93100931")

# Where the scan id sits inside scientificMetadata (the key both catalogs look scans up by).
SCAN_ID_KEY = "scan_id"

# Extracted path fields that have a first-class SciCat dataset field.
_FIELD_TARGETS = {
    "proposal": "proposalId",
    "sample": "sampleId",
    "pi": "principalInvestigator",
    "principal_investigator": "principalInvestigator",
}


def dataset_pid(scan_id: str, *, prefix: str, beamline: str) -> str:
    """The deterministic pid of a scan's dataset.

    Deterministic so that a create retried after a lost response or a crash hits the existing
    dataset (409) instead of making a second one. SciCat pids contain `/` (the PID prefix).
    """
    key = f"{beamline}\x1f{scan_id}"
    return f"{prefix}/{uuid.uuid5(PID_NAMESPACE, key)}"


def to_iso(moment: datetime) -> str:
    """An ISO 8601 timestamp with an explicit offset (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def mtime_iso(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """Extracts named fields (proposal, user, …) from the leading components of a scan id.

    `"{proposal}/{user}/{scan}"` matches `p1234/alice/scan_0001.h5` and also
    `p1234/alice/2026/scan_0001.h5` (extra trailing components are allowed); each field spans
    exactly one path component. A scan id that does not match yields no fields.
    """

    template: str
    pattern: re.Pattern[str]
    fields: tuple[str, ...]

    def extract(self, scan_id: str) -> dict[str, str]:
        match = self.pattern.match(scan_id)
        return dict(match.groupdict()) if match else {}


def compile_path_template(template: str | None) -> PathTemplate | None:
    """Compile `[catalog] path_template`, or explain exactly what is wrong with it.

    Raises:
        ConfigError: braces do not balance, a field has no name or an invalid one, a field is
            repeated, or uses a format spec / conversion.
    """
    if template is None or template == "":
        return None
    key = "catalog.path_template"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{template!r} is malformed ({exc})", key=key) from None
    regex: list[str] = ["^"]
    fields: list[str] = []
    for literal, name, spec, conversion in parts:
        regex.append(re.escape(literal))
        if name is None:
            continue
        if not name.isidentifier():
            raise ConfigError(
                f"{template!r}: field {{{name}}} needs a name made of letters, digits and _",
                key=key,
            )
        if spec or conversion:
            raise ConfigError(f"{template!r}: field {{{name}}} takes no format spec", key=key)
        if name in fields:
            raise ConfigError(f"{template!r}: field {{{name}}} appears twice", key=key)
        fields.append(name)
        regex.append(f"(?P<{name}>[^/]+)")
    if not fields:
        raise ConfigError(f"{template!r} names no {{field}} to extract", key=key)
    regex.append(r"(?:/.*)?\Z")
    return PathTemplate(template, re.compile("".join(regex), re.DOTALL), tuple(fields))


def source_location(scan: Scan, locations: Sequence[Location], config: CatalogConfig) -> Location:
    """The copy whose path becomes the dataset's `sourceFolder` (CFS in production).

    Raises:
        TerminalError: no location was given, so there is nothing to register.
    """
    if not locations:
        raise TerminalError(f"{scan.id}: cannot register a dataset without a verified copy")
    for location in locations:
        if location.endpoint == config.source_endpoint:
            return location
    return locations[0]


def _file_base(scan: Scan) -> str:
    """The scan-relative folder its files' dataset paths are relative to."""
    return scan.id if scan.is_directory else posixpath.dirname(scan.id)


def source_folder(scan: Scan, location: Location) -> str:
    """The dataset's folder: the scan folder, or the folder holding a single-file scan."""
    return location.path if scan.is_directory else posixpath.dirname(location.path)


def _relative(scan: Scan, file: ScanFile) -> str:
    base = _file_base(scan)
    return posixpath.relpath(file.path, base) if base else file.path


def location_entry(location: Location) -> dict[str, Any]:
    return {
        "endpoint": location.endpoint,
        "path": location.path,
        "level": location.level.word,
        "tape": location.tape,
        "delete_after": to_iso(location.delete_after) if location.delete_after else None,
    }


def scientific_metadata(
    scan: Scan,
    locations: Sequence[Location],
    fields: Mapping[str, str],
    *,
    beamline: str,
    instrument: str | None = None,
) -> dict[str, Any]:
    """Everything bl931 knows about a scan that SciCat has no field for (and the locations).

    Always written whole: a PATCH of `scientificMetadata` replaces the sub-document.
    `scan_id` and `beamline` never change once written: SciCat observations find bl931's datasets
    by them (with `inq`), never by the descriptive `creationLocation` or `sourceFolder`.
    """
    extra = {"instrument_name": {"value": instrument}} if instrument else {}
    return {
        SCAN_ID_KEY: {"value": scan.id},
        "beamline": {"value": beamline},
        **extra,
        "scan_kind": {"value": "directory" if scan.is_directory else "file"},
        "scan_version": {"value": scan.version},
        "checksum": {"value": scan.checksum, "algorithm": scan.checksum_algorithm},
        "path_fields": dict(fields),
        "locations": [location_entry(loc) for loc in locations],
    }


def dataset_body(
    scan: Scan,
    locations: Sequence[Location],
    config: CatalogConfig,
    *,
    beamline: str,
    template: PathTemplate | None = None,
) -> dict[str, Any]:
    """The `RawDataset` create body. `size` and `numberOfFiles` are left out on purpose.

    SciCat adds each origdatablock's size and file count to its dataset, so a dataset created
    with `size` set would be counted twice once its datablock is posted.
    """
    fields = template.extract(scan.id) if template else {}
    source = source_location(scan, locations, config)
    body: dict[str, Any] = {
        "pid": dataset_pid(scan.id, prefix=config.pid_prefix, beamline=beamline),
        "type": "raw",
        "owner": config.owner,
        "ownerGroup": config.owner_group,
        "accessGroups": list(config.access_groups),
        "contactEmail": config.contact_email,
        "creationLocation": config.creation_location,
        "sourceFolder": source_folder(scan, source),
        "creationTime": to_iso(scan.acquired_at),
        "datasetName": posixpath.basename(scan.id),
        "description": f"Beamline {beamline} scan {scan.id}",
        "keywords": list(config.keywords),
        "isPublished": False,
        "scientificMetadata": scientific_metadata(
            scan, locations, fields, beamline=beamline, instrument=config.instrument
        ),
    }
    # A person's name, never an e-mail address (SciCat: "first name and last name").
    if config.principal_investigator:
        body["principalInvestigator"] = config.principal_investigator
    # An Instrument's pid (SciCat's instrumentId refers to an Instrument record); its name is in
    # scientificMetadata.instrument_name.
    if config.instrument_pid:
        body["instrumentId"] = config.instrument_pid
    if config.data_format:
        body["dataFormat"] = config.data_format
    for name, value in fields.items():
        target = _FIELD_TARGETS.get(name)
        if target is not None:
            body[target] = value
    return body


def require_principal_investigator(config: CatalogConfig, template: PathTemplate | None) -> None:
    """SciCat requires `principalInvestigator` (a person's name) on raw datasets.

    Raises:
        ConfigError: neither `[catalog] principal_investigator` nor a `{pi}` path field gives one.
    """
    if config.principal_investigator.strip():
        return
    if template is not None and {"pi", "principal_investigator"} & set(template.fields):
        return
    raise ConfigError(
        "SciCat needs the principal investigator's name (first and last name) on every dataset: "
        'set principal_investigator = "First Last", or a path_template with a {pi} field',
        key="catalog.principal_investigator",
    )


# The dataset fields `dataset_body` writes: what a stored local document replays to SciCat.
DATASET_BODY_FIELDS = frozenset(
    [
        "pid",
        "type",
        "owner",
        "ownerGroup",
        "accessGroups",
        "contactEmail",
        "principalInvestigator",
        "creationLocation",
        "instrumentId",
        "sourceFolder",
        "creationTime",
        "datasetName",
        "description",
        "keywords",
        "isPublished",
        "scientificMetadata",
        "dataFormat",
        "proposalId",
        "sampleId",
    ]
)


def replay_body(doc: Mapping[str, Any], config: CatalogConfig) -> dict[str, Any]:
    """The create body of a stored local document, as it was recorded.

    Its `sourceFolder`, dates, names and metadata are kept as recorded (not rebuilt from today's
    config and locations). Two values older versions of bl931 wrote wrongly are corrected: a
    `principalInvestigator` that is the contact e-mail (it must be a person's name) becomes
    `[catalog] principal_investigator`, and an `instrumentId` that is the instrument's *name*
    becomes `[catalog] instrument_pid` (or is left out).
    """
    body = {k: v for k, v in doc.items() if k in DATASET_BODY_FIELDS}
    pi = body.get("principalInvestigator")
    if not pi or pi == body.get("contactEmail") or (isinstance(pi, str) and "@" in pi):
        if config.principal_investigator:
            body["principalInvestigator"] = config.principal_investigator
        else:
            body.pop("principalInvestigator", None)
    if body.get("instrumentId") == config.instrument or not body.get("instrumentId"):
        body.pop("instrumentId", None)
        if config.instrument_pid:
            body["instrumentId"] = config.instrument_pid
    return body


def datablock_body(scan: Scan) -> dict[str, Any]:
    """The one `OrigDatablock` of a scan: every file with size, time and checksum."""
    return {
        "size": scan.size,
        "chkAlg": scan.checksum_algorithm,
        "dataFileList": [
            {
                "path": _relative(scan, f),
                "size": f.size,
                "time": mtime_iso(f.mtime),
                "chk": f.checksum,
            }
            for f in sorted(scan.files, key=lambda f: f.path)
        ],
    }


def lifecycle_body(
    locations: Sequence[Location],
    config: CatalogConfig,
    *,
    pruned_at: datetime | None = None,
) -> dict[str, Any]:
    """`datasetlifecycle` fields bl931 owns, in SciCat's own words.

    - `archivable` false once a tape copy exists (SciCat's archivers set the same after archiving);
    - `retrievable` true only with a tape copy *and* `[catalog] retrievable_from_tape`: bl931 does
      not serve SciCat retrieve jobs, so only a facility whose job system restores from the tape
      copy may invite users to submit them;
    - `isOnCentralDisk`: the central disk (`source_endpoint`, CFS) still holds a copy;
    - `dateOfDiskPurging`: when the central disk copy is due to be pruned (its `delete_after`, from
      the retention policy); once pruned, `pruned_at` (when known) is the real date.

    Sent through the merging `PATCH /Datasets/{pid}/datasetlifecycle` (or with the create), so
    fields set by others (retrieve messages, export targets) survive.
    """
    archived = any(loc.tape for loc in locations)
    disk = [loc for loc in locations if not loc.tape]
    central = [loc for loc in disk if loc.endpoint == config.source_endpoint]
    on_central = bool(central) if config.source_endpoint else bool(disk)
    body: dict[str, Any] = {
        "archivable": not archived,
        "retrievable": archived and config.retrievable_from_tape,
        "archiveStatusMessage": "datasetOnArchiveDisk" if archived else "datasetCreated",
        "isOnCentralDisk": on_central,
    }
    purge_dates = [loc.delete_after for loc in (central or disk) if loc.delete_after is not None]
    if purge_dates:
        body["dateOfDiskPurging"] = to_iso(min(purge_dates))
    elif not on_central and pruned_at is not None:
        body["dateOfDiskPurging"] = to_iso(pruned_at)
    return body


def local_document(
    scan: Scan,
    locations: Sequence[Location],
    config: CatalogConfig,
    *,
    beamline: str,
    template: PathTemplate | None = None,
) -> dict[str, Any]:
    """The dataset as the local catalog keeps it: create body + datablock + lifecycle in one."""
    doc = dataset_body(scan, locations, config, beamline=beamline, template=template)
    block = datablock_body(scan)
    doc["size"] = block["size"]
    doc["numberOfFiles"] = len(block["dataFileList"])
    doc["files"] = [{**entry, "algorithm": block["chkAlg"]} for entry in block["dataFileList"]]
    doc["datasetlifecycle"] = lifecycle_body(locations, config)
    return doc


# ---- reading documents back -----------------------------------------------------------------


def scan_id_of(doc: Mapping[str, Any]) -> str | None:
    """The bl931 scan id a dataset records (None for datasets bl931 did not make)."""
    metadata = doc.get("scientificMetadata") or {}
    entry = metadata.get(SCAN_ID_KEY) if isinstance(metadata, Mapping) else None
    value = entry.get("value") if isinstance(entry, Mapping) else None
    return value if isinstance(value, str) else None


def recorded_endpoints(doc: Mapping[str, Any]) -> frozenset[str]:
    """The endpoint names of the locations a dataset records."""
    metadata = doc.get("scientificMetadata") or {}
    entries = metadata.get("locations", []) if isinstance(metadata, Mapping) else []
    return frozenset(
        str(e["endpoint"]) for e in entries if isinstance(e, Mapping) and "endpoint" in e
    )


def locations_from_document(doc: Mapping[str, Any]) -> list[Location]:
    entries: Iterable[Mapping[str, Any]] = doc["scientificMetadata"].get("locations", [])
    return [
        Location(
            endpoint=e["endpoint"],
            path=e["path"],
            level=Level.parse(e["level"]),
            tape=bool(e.get("tape", False)),
            delete_after=datetime.fromisoformat(e["delete_after"])
            if e.get("delete_after")
            else None,
        )
        for e in entries
    ]


def scan_from_document(doc: Mapping[str, Any]) -> Scan:
    """Rebuild the `Scan` a local document was made from (for back-fill)."""
    metadata = doc["scientificMetadata"]
    scan_id = metadata[SCAN_ID_KEY]["value"]
    is_directory = metadata["scan_kind"]["value"] == "directory"
    base = scan_id if is_directory else posixpath.dirname(scan_id)
    files = tuple(
        ScanFile(
            path=posixpath.join(base, f["path"]) if base else f["path"],
            size=int(f["size"]),
            mtime=datetime.fromisoformat(f["time"]).timestamp(),
            checksum=f.get("chk", ""),
        )
        for f in doc.get("files", [])
    )
    return Scan(
        id=scan_id,
        files=files,
        acquired_at=datetime.fromisoformat(doc["creationTime"]),
        checksum_algorithm=metadata["checksum"]["algorithm"],
        checksum=metadata["checksum"]["value"],
        version=int(metadata["scan_version"]["value"]),
        is_directory=is_directory,
    )
