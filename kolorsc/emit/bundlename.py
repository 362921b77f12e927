"""The challenge's file name rule for a submission: `{team}-可图Kolors训练-{work}.zip`.

    name_problems(path, prompts) -> [(level, message)]

`kolorsc bundle verify` (and so `publish`) reports a zip that breaks it: no `-可图Kolors训练-`
in the name, an empty team or work, the team still the placeholder `my-team` that `kolorsc
init` writes (a submission under it is not the team's), or a name that disagrees with the
story and team recorded in prompts.json (a renamed file). `kolorsc check` warns about the
placeholder long before (kolorsc.spec.check).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path


RULE = "可图Kolors训练"
from kolorsc.i18n import _
from kolorsc.spec.scaffold import DEFAULT_TEAM as PLACEHOLDER_TEAM  # what `kolorsc init` writes


def name_problems(path: Path, prompts: dict | None) -> list[tuple[str, str]]:
    name = unicodedata.normalize("NFC", Path(path).name)
    rule = f"{{team}}-{RULE}-{{id}}.zip"
    if not name.lower().endswith(".zip"):
        return [("error", _("the file name {name} does not end in .zip (the challenge's rule: {rule})").format(
            name=name, rule=rule))]
    team, sep, work = name[:-4].partition(f"-{RULE}-")
    if not sep or not team or not work:
        return [("error", _("the file name {name} does not follow the challenge's rule {rule}").format(name=name, rule=rule))]
    out = []
    if team == PLACEHOLDER_TEAM:
        out.append(("error", _("the team is the placeholder \"{team}\": set `team:` in the story to your team's "
                               "registered name and build again (only the bundle is made again)").format(
                                   team=PLACEHOLDER_TEAM)))
    recorded = prompts or {}
    if recorded.get("team") not in (None, team):
        out.append(("error", _("the file name says team \"{team}\" but prompts.json says \"{recorded}\": the zip was "
                               "renamed; build it again instead").format(team=team, recorded=recorded["team"])))
    if recorded.get("story") not in (None, work):
        out.append(("error", _("the file name says \"{work}\" but prompts.json is of the story \"{recorded}\"").format(
            work=work, recorded=recorded["story"])))
    return out
