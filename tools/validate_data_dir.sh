#!/usr/bin/env bash
# Check that a Kaldi data directory keeps the data-dir contract.
#
# Usage: tools/validate_data_dir.sh [--no-wav-check] DATA_DIR
#   --no-wav-check  do not check that the audio files named in wav.scp exist
#                   (commands ending in "|" are never checked)
#
# Required files: wav.scp, utt2spk, spk2utt. Optional: segments, utt2dur,
# feats.scp, trials. Every file except trials must be sorted by key
# (LC_ALL=C sort) with unique keys. Checked:
#   - line format: field counts, numbers in segments and utt2dur, trial labels
#     (target|nontarget), no empty lines, no carriage returns;
#   - utt2spk and wav.scp (or segments, when present) hold the same utterances;
#   - spk2utt is exactly utt2spk grouped by speaker;
#   - segments name known recordings and have 0 <= start < end;
#   - utt2dur, feats.scp and both sides of each trial name known utterances;
#   - the audio files of wav.scp exist (unless --no-wav-check).
# On failure prints one "DIR/FILE:LINE: problem" message per problem (at most
# a few per file) and exits 1; otherwise prints a one-line OK summary.
# wespk.data.data_dir.validate_data_dir makes the same checks with the same
# messages in Python, and wespk's data-dir reader and tools apply the same
# segment rule (0 <= start < end; no "end <= 0 means the end of the file").
# Flags are read by tools/data_dir_options.sh.
set -euo pipefail

# Configuration section.
max_messages_per_file=5
. "$(dirname "${BASH_SOURCE[0]}")/data_dir_options.sh"   # check_wav, data_dir

if [ ! -d "$data_dir" ]; then
  echo "$0: $data_dir is not a directory" >&2
  exit 1
fi

export LC_ALL=C
exec perl - "$(basename "$0")" "$data_dir" "$check_wav" "$max_messages_per_file" <<'PERL'
use strict;
use warnings;

my ($program, $dir, $check_wav, $max_messages) = @ARGV;
$check_wav = $check_wav eq 'true';

my %message_count;   # file -> number of problems found
my @errors;
my @warnings;

sub problem {
  my ($file, $line_number, $message) = @_;
  my $where = defined $line_number ? "$dir/$file:$line_number" : "$dir/$file";
  if (++$message_count{$file} <= $max_messages) {
    push @errors, "$where: $message";
  }
}

sub warning {
  my ($file, $message) = @_;
  push @warnings, "$dir/$file: warning: $message";
}

sub is_number { return $_[0] =~ /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/ }

# Read DIR/FILE. Returns (entries, line_of_key) where each entry is
# {key, fields, line, value}; value is the text after the key. Checks the
# field count and, unless $ordered is false, that keys are sorted and unique.
sub read_file {
  my ($file, $min_fields, $max_fields, $format, $ordered) = @_;
  my @entries;
  my %line_of_key;
  my $path = "$dir/$file";
  open(my $in, '<', $path) or do { problem($file, undef, "cannot read: $!"); return ([], {}); };
  my ($previous_key, $previous_line, $disorder_reported);
  while (my $text = <$in>) {
    my $line = $.;
    chomp $text;
    if ($text =~ /\r/) {
      problem($file, $line, "carriage return in line (DOS line ending?)");
      $text =~ s/\r//g;
    }
    if ($text =~ /^\s*$/) {
      problem($file, $line, "empty line");
      next;
    }
    if ($text =~ /^\s/) {
      problem($file, $line, "line starts with whitespace");
      next;
    }
    my @fields = split(' ', $text);
    if (@fields < $min_fields || (defined $max_fields && @fields > $max_fields)) {
      problem($file, $line, "malformed line, expected '$format': '$text'");
      next;
    }
    my $key = $fields[0];
    (my $value = $text) =~ s/^\S+\s+//;
    if ($ordered) {
      if (exists $line_of_key{$key}) {
        problem($file, $line, "duplicate key '$key' (first on line $line_of_key{$key})");
        next;
      }
      if (defined $previous_key && $key lt $previous_key && !$disorder_reported) {
        problem($file, $line, "not sorted: '$key' comes after '$previous_key' (line $previous_line);"
                . " sort with LC_ALL=C sort");
        $disorder_reported = 1;
      }
      ($previous_key, $previous_line) = ($key, $line);
      $line_of_key{$key} = $line;
    }
    push @entries, { key => $key, fields => \@fields, line => $line, value => $value };
  }
  close($in);
  problem($file, undef, "file is empty") if !@entries && !$message_count{$file};
  return (\@entries, \%line_of_key);
}

for my $required (qw(wav.scp utt2spk spk2utt)) {
  problem($required, undef, "missing (required file)") unless -f "$dir/$required";
}
if (@errors) {
  print STDERR "$program: $_\n" for @errors;
  print STDERR "$program: $dir is not a valid data directory\n";
  exit 1;
}

my ($wav_entries, $wav_line) = read_file('wav.scp', 2, undef, 'recording path | recording command |', 1);
my ($utt2spk_entries, $utt2spk_line) = read_file('utt2spk', 2, 2, 'utterance speaker', 1);
my ($spk2utt_entries, $spk2utt_line) = read_file('spk2utt', 2, undef, 'speaker utterance1 utterance2 ...', 1);

my %utt2spk = map { ($_->{key} => $_->{fields}[1]) } @$utt2spk_entries;

# wav.scp: a single path, or a command ending in "|".
for my $entry (@$wav_entries) {
  my $value = $entry->{value};
  next if $value =~ /\|\s*$/;
  if (@{$entry->{fields}} != 2) {
    problem('wav.scp', $entry->{line},
            "malformed line, expected 'recording path' or 'recording command |': '$entry->{key} $value'");
    next;
  }
  if ($check_wav && !-f $value) {
    # An archive offset such as foo.ark:1234 names the file foo.ark.
    my $file = $value =~ /^(.+):\d+$/ ? $1 : $value;
    problem('wav.scp', $entry->{line}, "audio file '$value' does not exist") unless -f $file;
  }
}

# The utterances that have audio: segments if present, else wav.scp.
my ($audio_file, $audio_entries);
if (-f "$dir/segments") {
  $audio_file = 'segments';
  my ($segment_entries) = read_file('segments', 4, 4, 'utterance recording start end', 1);
  my %used_recording;
  for my $entry (@$segment_entries) {
    my (undef, $recording, $start, $end) = @{$entry->{fields}};
    $used_recording{$recording} = 1;
    if (!exists $wav_line->{$recording}) {
      problem('segments', $entry->{line}, "recording '$recording' of '$entry->{key}' is not in wav.scp");
    }
    if (!is_number($start) || !is_number($end)) {
      problem('segments', $entry->{line}, "start and end must be numbers: '$start' '$end'");
    } elsif ($start < 0) {
      problem('segments', $entry->{line}, "start $start < 0");
    } elsif ($end <= $start) {
      problem('segments', $entry->{line}, "end $end <= start $start");
    }
  }
  my @unused = grep { !$used_recording{$_->{key}} } @$wav_entries;
  warning('wav.scp', scalar(@unused) . " recording(s) used by no segment, e.g. '$unused[0]{key}'")
    if @unused;
  $audio_entries = $segment_entries;
} else {
  $audio_file = 'wav.scp';
  $audio_entries = $wav_entries;
}

my %has_audio = map { ($_->{key} => 1) } @$audio_entries;
for my $entry (@$utt2spk_entries) {
  problem('utt2spk', $entry->{line}, "utterance '$entry->{key}' is not in $audio_file")
    unless $has_audio{$entry->{key}};
}
for my $entry (@$audio_entries) {
  problem($audio_file, $entry->{line}, "utterance '$entry->{key}' is not in utt2spk")
    unless exists $utt2spk{$entry->{key}};
}

# spk2utt must be utt2spk grouped by speaker.
my %spk2utt_line_of_utt;
for my $entry (@$spk2utt_entries) {
  my ($speaker, @utts) = @{$entry->{fields}};
  for my $utt (@utts) {
    if (exists $spk2utt_line_of_utt{$utt}) {
      problem('spk2utt', $entry->{line}, "utterance '$utt' is listed twice (also on line $spk2utt_line_of_utt{$utt})");
      next;
    }
    $spk2utt_line_of_utt{$utt} = $entry->{line};
    if (!exists $utt2spk{$utt}) {
      problem('spk2utt', $entry->{line}, "utterance '$utt' of speaker '$speaker' is not in utt2spk");
    } elsif ($utt2spk{$utt} ne $speaker) {
      problem('spk2utt', $entry->{line}, "utterance '$utt' is under speaker '$speaker' but utt2spk"
              . " (line $utt2spk_line->{$utt}) says '$utt2spk{$utt}'");
    }
  }
}
for my $entry (@$utt2spk_entries) {
  problem('utt2spk', $entry->{line}, "utterance '$entry->{key}' of speaker '$entry->{fields}[1]'"
          . " is missing from spk2utt") unless exists $spk2utt_line_of_utt{$entry->{key}};
}

if (-f "$dir/utt2dur") {
  my ($entries) = read_file('utt2dur', 2, 2, 'utterance duration', 1);
  for my $entry (@$entries) {
    my $duration = $entry->{fields}[1];
    if (!is_number($duration) || $duration <= 0) {
      problem('utt2dur', $entry->{line}, "duration must be a positive number: '$duration'");
    }
    problem('utt2dur', $entry->{line}, "utterance '$entry->{key}' is not in utt2spk")
      unless exists $utt2spk{$entry->{key}};
  }
}

if (-f "$dir/feats.scp") {
  my ($entries) = read_file('feats.scp', 2, 2, 'utterance rxfilename', 1);
  for my $entry (@$entries) {
    problem('feats.scp', $entry->{line}, "utterance '$entry->{key}' is not in utt2spk")
      unless exists $utt2spk{$entry->{key}};
  }
}

my $num_trials = 0;
if (-f "$dir/trials") {
  my ($entries) = read_file('trials', 3, 3, 'enroll test target|nontarget', 0);
  $num_trials = @$entries;
  for my $entry (@$entries) {
    my ($enroll, $test, $label) = @{$entry->{fields}};
    if ($label ne 'target' && $label ne 'nontarget') {
      problem('trials', $entry->{line}, "label must be 'target' or 'nontarget', got '$label'");
    }
    for my $utt ($enroll, $test) {
      problem('trials', $entry->{line}, "utterance '$utt' is not in utt2spk") unless exists $utt2spk{$utt};
    }
  }
}

print STDERR "$program: $_\n" for @warnings;
if (@errors) {
  print STDERR "$program: $_\n" for @errors;
  for my $file (sort keys %message_count) {
    my $more = $message_count{$file} - $max_messages;
    print STDERR "$program: $dir/$file: ... and $more more problem(s)\n" if $more > 0;
  }
  print STDERR "$program: $dir is not a valid data directory"
             . " (tools/fix_data_dir.sh $dir repairs what it can)\n";
  exit 1;
}

my $num_speakers = @$spk2utt_entries;
my $summary = scalar(@$utt2spk_entries) . " utterances, $num_speakers speakers";
$summary .= ", " . scalar(@$wav_entries) . " recordings with segments" if $audio_file eq 'segments';
$summary .= ", $num_trials trials" if -f "$dir/trials";
$summary .= " (audio files not checked)" unless $check_wav;
print "$program: $dir: OK: $summary\n";
PERL
