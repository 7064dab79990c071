/**
 * Source families for leave-one-family-out validation. Sources that share a recording
 * chain or a production (the same studio, engine or corpus) go together: holding out one
 * Debian shooter while its sibling's voice actor stays in training would measure memory,
 * not generalisation. Unknown sources are their own family, so a new folder still works.
 */
const FAMILIES: Record<string, string> = {
  // web-collected scream sets (Freesound and other web clips, each repo its own chain)
  'RohanMathur17/Scream_Detection': 'web:rohan-freesound',
  'Charitha-kr/human_scream_detection': 'web:small-scream-repos',
  'devi-harikaa/scream-detector-project': 'web:small-scream-repos',
  // a YouTube sound-effects compilation: screams, cats, dogs
  'ahmetnihat/ses_analizi': 'web:ytsfx-compilation',
  // baby cries (8 kHz corpus, and cries with music and noise)
  'gveres/donateacry-corpus': 'corpus:baby-cries',
  'saha0073/baby-cry-detection-from-music-and-noise': 'corpus:baby-cries',
  'deepxzy/Toronto-emotional-speech-set': 'corpus:emotional-speech',
  // a CC0/CC-BY sound-effects collection (doors, weather, animals, machines)
  'RedundantC/wis_part1': 'sfx:mtsounds',
  // desktop and telephony sounds: prompts, notifications
  'debian:asterisk-core-sounds-en-wav': 'sfx:system-and-telephony',
  'debian:oxygen-sounds': 'sfx:system-and-telephony',
  'debian:sound-theme-freedesktop': 'sfx:system-and-telephony',
  // games, by genre and engine lineage (shared voice packs and sound designers)
  'debian:megaglest-data': 'game:megaglest',
  'debian:ufoai-sound': 'game:ufoai',
  'debian:nexuiz-data': 'game:arena-shooters',
  'debian:openarena-data': 'game:arena-shooters',
  'debian:openarena-088-data': 'game:arena-shooters',
  'debian:redeclipse-data': 'game:arena-shooters',
  'debian:cube2-data': 'game:arena-shooters',
  'debian:freedoom': 'game:arena-shooters',
  'debian:hedgewars-data': 'game:cartoon',
  'debian:warmux-data': 'game:cartoon',
  'debian:tuxpaint-stamps-default': 'game:cartoon',
  'debian:openclonk-data': 'game:cartoon',
  'debian:fillets-ng-data': 'game:cartoon',
  'debian:btanks-data': 'game:cartoon',
  'debian:wesnoth-1.16-data': 'game:strategy-rpg',
  'debian:warzone2100-data': 'game:strategy-rpg',
  'debian:flare-game': 'game:strategy-rpg',
  'debian:freedink-data': 'game:strategy-rpg',
  'debian:ardentryst': 'game:strategy-rpg',
  'debian:lugaru-data': 'game:strategy-rpg',
};

export function familyOf(source: string): string {
  return FAMILIES[source] ?? source;
}
