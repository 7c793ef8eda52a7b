#!/usr/bin/env bash
# Repair a Kaldi data directory as far as possible and report what was dropped.
#
# Usage: tools/fix_data_dir.sh [--no-wav-check] DATA_DIR
#   --no-wav-check  keep wav.scp entries whose audio file does not exist
#
# What it does:
#   - removes carriage returns and surrounding whitespace, drops empty and
#     malformed lines (wrong field count; segments that are not numbers or
#     have end <= start; non-positive durations);
#   - drops duplicate keys, keeping the first line of each key;
#   - sorts every keyed file (LC_ALL=C);
#   - drops wav.scp entries whose audio file does not exist (commands ending
#     in "|" are kept), and segments whose recording is not in wav.scp;
#   - keeps only the utterances present both in utt2spk and in wav.scp (in
#     segments when that file exists), then filters utt2dur, feats.scp,
#     utt2num_frames, vad.scp, text, segments and wav.scp to them, spk2gender
#     to the remaining speakers, reco2dur to the remaining recordings, and
#     trials to the trials whose two utterances remain (trial order is kept;
#     the file is removed if no trial remains);
#   - regenerates spk2utt from utt2spk, then runs tools/validate_data_dir.sh.
# Each dropped item is reported: a count and the first few keys, with the
# reason. Only files whose content changes are rewritten: each is first copied
# to DATA_DIR/.backup/ (replacing the backup of an earlier run of that file),
# then replaced atomically (written to a temporary file in DATA_DIR, then
# renamed). If no utterance would remain, nothing is changed and the exit
# status is 1.
# Flags are read by tools/data_dir_options.sh.
set -euo pipefail

# Configuration section.
max_keys_reported=5
. "$(dirname "${BASH_SOURCE[0]}")/data_dir_options.sh"   # check_wav, data_dir
tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
program=$(basename "$0")

for required in wav.scp utt2spk; do
  if [ ! -f "$data_dir/$required" ]; then
    echo "$program: $data_dir/$required does not exist" >&2
    exit 1
  fi
done

export LC_ALL=C
work_dir=$(mktemp -d "$data_dir/.fix_data_dir.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT

# Write the repaired files to $work_dir and report on stdout.
perl - "$program" "$data_dir" "$work_dir" "$check_wav" "$max_keys_reported" <<'PERL'
use strict;
use warnings;

my ($program, $dir, $out_dir, $check_wav, $max_keys) = @ARGV;
$check_wav = $check_wav eq 'true';

sub report { print "$program: $_[0]\n"; }

sub key_list {
  my @keys = @_;
  my $text = join(', ', @keys[0 .. ($#keys < $max_keys - 1 ? $#keys : $max_keys - 1)]);
  $text .= ', ...' if @keys > $max_keys;
  return $text;
}

sub is_number { return $_[0] =~ /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/ }

# Line checks per file: a sub returning an error message or undef.
my %line_problem = (
  'wav.scp' => sub {
    my @f = @_;
    return 'fewer than 2 fields' if @f < 2;
    return 'more than 2 fields and not a command ending in "|"' if @f > 2 && $f[-1] !~ /\|$/;
    return undef;
  },
  'utt2spk'        => sub { @_ == 2 ? undef : 'expected 2 fields' },
  'segments'       => sub {
    my @f = @_;
    return 'expected 4 fields' if @f != 4;
    return 'start or end is not a number' if !is_number($f[2]) || !is_number($f[3]);
    return "start $f[2] < 0" if $f[2] < 0;
    return "end $f[3] <= start $f[2]" if $f[3] <= $f[2];
    return undef;
  },
  'utt2dur'        => sub { @_ == 2 && is_number($_[1]) && $_[1] > 0 ? undef : 'expected a positive duration' },
  'reco2dur'       => sub { @_ == 2 && is_number($_[1]) && $_[1] > 0 ? undef : 'expected a positive duration' },
  'utt2num_frames' => sub { @_ == 2 && $_[1] =~ /^\d+$/ ? undef : 'expected a frame count' },
  'feats.scp'      => sub { @_ == 2 ? undef : 'expected 2 fields' },
  'vad.scp'        => sub { @_ == 2 ? undef : 'expected 2 fields' },
  'text'           => sub { @_ >= 1 ? undef : 'empty' },
  'spk2gender'     => sub { @_ == 2 ? undef : 'expected 2 fields' },
);
my @utterance_files = qw(utt2dur feats.scp utt2num_frames vad.scp text);

# Read a keyed file: clean lines, drop malformed lines and duplicate keys
# (keeping the first), report both. Returns {key => line}.
sub read_keyed {
  my ($file) = @_;
  my $path = "$dir/$file";
  open(my $in, '<', $path) or die "$program: cannot read $path: $!\n";
  my (%line_of_key, %first_line, @malformed, @duplicates);
  my ($previous_key, $sorted) = (undef, 1);
  while (my $text = <$in>) {
    my $line = $.;
    $text =~ s/\r//g;
    $text =~ s/^\s+|\s+$//g;
    my @fields = split(' ', $text);
    my $problem = @fields ? $line_problem{$file}->(@fields) : 'empty line';
    if (defined $problem) {
      push @malformed, "line $line ($problem)";
      next;
    }
    my $key = $fields[0];
    if (exists $line_of_key{$key}) {
      push @duplicates, "$key (line $line, kept line $first_line{$key})";
      next;
    }
    $sorted = 0 if defined $previous_key && $key lt $previous_key;
    $previous_key = $key;
    $line_of_key{$key} = $text;
    $first_line{$key} = $line;
  }
  close($in);
  report("$path: dropped " . scalar(@malformed) . " malformed line(s): " . key_list(@malformed))
    if @malformed;
  report("$path: dropped " . scalar(@duplicates) . " duplicate key(s), keeping the first line: "
         . key_list(@duplicates)) if @duplicates;
  report("$path: was not sorted; sorted it") unless $sorted;
  return \%line_of_key;
}

sub write_keyed {
  my ($file, $lines, $keep) = @_;
  open(my $out, '>', "$out_dir/$file") or die "$program: cannot write $out_dir/$file: $!\n";
  for my $key (sort keys %$lines) {
    print $out "$lines->{$key}\n" if $keep->($key);
  }
  close($out) or die "$program: error writing $out_dir/$file: $!\n";
}

sub report_dropped {
  my ($what, $reason, @keys) = @_;
  report("$dir: dropped " . scalar(@keys) . " $what $reason: " . key_list(@keys)) if @keys;
}

my $wav = read_keyed('wav.scp');
my $utt2spk = read_keyed('utt2spk');
my $num_utts_before = keys %$utt2spk;

# Recordings whose audio file does not exist.
my %missing_recording;
if ($check_wav) {
  for my $recording (sort keys %$wav) {
    (my $value = $wav->{$recording}) =~ s/^\S+\s+//;
    next if $value =~ /\|$/;
    my $file = (!-f $value && $value =~ /^(.+):\d+$/) ? $1 : $value;
    $missing_recording{$recording} = $value unless -f $file;
  }
}

# Utterances with audio, and why the others have none.
my (%audio_utts, $segments, %segment_recording);
my (@no_audio_file, @recording_unknown);
if (-f "$dir/segments") {
  $segments = read_keyed('segments');
  for my $utt (sort keys %$segments) {
    my $recording = (split(' ', $segments->{$utt}))[1];
    $segment_recording{$utt} = $recording;
    if (!exists $wav->{$recording}) {
      push @recording_unknown, $utt;
    } elsif (exists $missing_recording{$recording}) {
      push @no_audio_file, "$utt ($missing_recording{$recording})";
    } else {
      $audio_utts{$utt} = 1;
    }
  }
} else {
  for my $utt (sort keys %$wav) {
    if (exists $missing_recording{$utt}) {
      push @no_audio_file, "$utt ($missing_recording{$utt})";
    } else {
      $audio_utts{$utt} = 1;
    }
  }
}
my $audio_source = $segments ? 'segments' : 'wav.scp';
my @audio_listed = $segments ? keys %$segments : keys %$wav;

my %keep = map { ($_ => 1) } grep { $audio_utts{$_} } keys %$utt2spk;
my @not_in_utt2spk = sort grep { !exists $utt2spk->{$_} } @audio_listed;
my %has_entry = map { ($_ => 1) } @audio_listed;
my @no_audio_entry = sort grep { !$has_entry{$_} } keys %$utt2spk;

report_dropped('utterance(s)', 'whose audio file does not exist', @no_audio_file);
report_dropped('segment(s)', 'whose recording is not in wav.scp', @recording_unknown);
report_dropped('utterance(s)', "not in utt2spk (listed in $audio_source)", @not_in_utt2spk);
report_dropped('utterance(s)', "not in $audio_source (listed in utt2spk)", @no_audio_entry);

if (!%keep) {
  print STDERR "$program: $dir: no utterance would remain; nothing changed\n";
  exit 1;
}

my %keep_speaker = map { ($utt2spk->{$_} =~ s/^\S+\s+//r => 1) } keys %keep;
my %keep_recording = $segments
  ? (map { ($segment_recording{$_} => 1) } keys %keep)
  : %keep;

write_keyed('utt2spk', $utt2spk, sub { $keep{$_[0]} });
write_keyed('segments', $segments, sub { $keep{$_[0]} }) if $segments;
my @unused_recordings = sort grep { !$keep_recording{$_} && !exists $missing_recording{$_} } keys %$wav;
report_dropped('recording(s)', 'from wav.scp that no kept segment uses', @unused_recordings)
  if $segments;
write_keyed('wav.scp', $wav, sub { $keep_recording{$_[0]} });

for my $file (@utterance_files) {
  next unless -f "$dir/$file";
  my $lines = read_keyed($file);
  my @dropped = sort grep { !$keep{$_} } keys %$lines;
  report("$dir/$file: dropped " . scalar(@dropped) . " line(s) of utterances not kept: " . key_list(@dropped))
    if @dropped;
  write_keyed($file, $lines, sub { $keep{$_[0]} });
}
if (-f "$dir/spk2gender") {
  write_keyed('spk2gender', read_keyed('spk2gender'), sub { $keep_speaker{$_[0]} });
}
if (-f "$dir/reco2dur") {
  write_keyed('reco2dur', read_keyed('reco2dur'), sub { $keep_recording{$_[0]} });
}

# trials: not keyed; keep the order, keep well-formed trials of kept utterances.
if (-f "$dir/trials") {
  open(my $in, '<', "$dir/trials") or die "$program: cannot read $dir/trials: $!\n";
  open(my $out, '>', "$out_dir/trials") or die "$program: cannot write $out_dir/trials: $!\n";
  my (@malformed, @unknown);
  while (my $text = <$in>) {
    $text =~ s/\r//g;
    $text =~ s/^\s+|\s+$//g;
    my @fields = split(' ', $text);
    if (@fields != 3 || $fields[2] !~ /^(target|nontarget)$/) {
      push @malformed, "line $.";
    } elsif (!$keep{$fields[0]} || !$keep{$fields[1]}) {
      push @unknown, "line $. ($fields[0] $fields[1])";
    } else {
      print $out "$text\n";
    }
  }
  close($in);
  close($out) or die "$program: error writing $out_dir/trials: $!\n";
  report("$dir/trials: dropped " . scalar(@malformed) . " malformed trial(s): " . key_list(@malformed))
    if @malformed;
  report("$dir/trials: dropped " . scalar(@unknown) . " trial(s) naming utterances not kept: "
         . key_list(@unknown)) if @unknown;
  if (-z "$out_dir/trials") {
    report("$dir/trials: no trial remains; removing the file");
    unlink("$out_dir/trials");
    open(my $remove, '>>', "$out_dir/.remove") or die "$program: cannot write $out_dir/.remove: $!\n";
    print $remove "trials\n";
    close($remove);
  }
}

report("$dir: kept " . scalar(keys %keep) . " of $num_utts_before utterances in utt2spk, "
       . scalar(keys %keep_speaker) . " speakers");
PERL

# Regenerate spk2utt from the repaired utt2spk.
"$tools_dir/utt2spk_to_spk2utt.pl" "$work_dir/utt2spk" > "$work_dir/spk2utt"

# Back up the originals of the files that change, then move the new files
# into place; unchanged files (and their earlier backups) are left alone.
removed_files=()
if [ -f "$work_dir/.remove" ]; then
  mapfile -t removed_files < "$work_dir/.remove"
fi
changed_files=()
for file in "$work_dir"/*; do
  name=$(basename "$file")
  if ! cmp -s "$file" "$data_dir/$name"; then
    changed_files+=("$name")
  fi
done
if [ ${#changed_files[@]} -eq 0 ] && [ ${#removed_files[@]} -eq 0 ]; then
  echo "$program: $data_dir: nothing to change"
else
  mkdir -p "$data_dir/.backup"
  for name in "${changed_files[@]}" "${removed_files[@]}"; do
    if [ -f "$data_dir/$name" ]; then
      cp -p "$data_dir/$name" "$data_dir/.backup/$name"
    fi
  done
  for name in "${changed_files[@]}"; do
    mv -f "$work_dir/$name" "$data_dir/$name"
  done
  for name in "${removed_files[@]}"; do
    rm -f "$data_dir/$name"
  done
  echo "$program: $data_dir: rewrote ${changed_files[*]:-no file}${removed_files[*]:+, removed ${removed_files[*]}};" \
       "originals in $data_dir/.backup/"
fi

validate_options=()
$check_wav || validate_options+=(--no-wav-check)
"$tools_dir/validate_data_dir.sh" "${validate_options[@]}" "$data_dir"
