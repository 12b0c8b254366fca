#!/usr/bin/env bash
# Install the extra speech engines for building a multi-engine training corpus:
# MBROLA (Debian contrib) with its English voices us1 us2 us3 en1 and eleven
# other languages' voices that espeak-ng drives in English (non-free), and
# Festival with its English ked_diphone voice and the Italian, Czech, Catalan and Hindi voices,
# CMU Flite (main), and Open JTalk (main) with Nitech's Japanese HTS voice (contrib, CC-BY 3.0).
#
# The system's apt sources are left untouched: a private copy of them with
# contrib and non-free enabled is used for this install only.
#
# Only the corpus-building step needs this; training, tests and CI do not.
# MBROLA voices forbid commercial use: audio made with them is for locally
# built corpora only, never shipped or committed.
#
# Usage (as root): scripts/install_engines.sh [STATE_DIR]   (default /var/tmp/lipsync-apt)
set -euo pipefail

state="${1:-/var/tmp/lipsync-apt}"
sources_dir="$state/sources.list.d"
lists_dir="$state/lists"
system_sources=/etc/apt/sources.list.d/debian.sources

if [ "$(id -u)" -ne 0 ]; then
    echo "error: run as root (apt-get install needs it), e.g. sudo $0" >&2
    exit 1
fi
if [ ! -f "$system_sources" ]; then
    echo "error: $system_sources not found; this script expects Debian's deb822 sources (bookworm or later)" >&2
    exit 1
fi

mkdir -p "$sources_dir" "$lists_dir/partial"
sed -E 's/^Components:.*/Components: main contrib non-free/' "$system_sources" > "$sources_dir/debian.sources"

apt_private=(
    -o Dir::Etc::SourceList=/dev/null
    -o "Dir::Etc::SourceParts=$sources_dir"
    -o "Dir::State::Lists=$lists_dir"
)
apt-get "${apt_private[@]}" update
DEBIAN_FRONTEND=noninteractive apt-get "${apt_private[@]}" install -y --no-install-recommends \
    espeak-ng libespeak-ng1 mbrola festival festvox-kdlpc16k flite \
    festvox-italp16k festvox-itapc16k festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-ca-ona-hts festvox-hi-nsk festival-hi \
    mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 mbrola-af1 mbrola-nl2 mbrola-fr1 mbrola-de1 mbrola-de2 mbrola-de4 \
    mbrola-hu1 mbrola-pl1 mbrola-ro1 mbrola-sw1 mbrola-sw2 mbrola-it3 mbrola-it4 mbrola-cz2 \
    open-jtalk open-jtalk-mecab-naist-jdic hts-voice-nitech-jp-atr503-m001 \
    festvox-kallpc16k festvox-us-slt-hts \
    festvox-ru  # these three are not for training: the blind test's voices and the human-speech test set (data/README.md)

echo "installed; MBROLA voices: $(ls /usr/share/mbrola | tr '\n' ' ')"
echo "note: MBROLA voices are licensed for non-commercial use only; never ship audio made with them"
