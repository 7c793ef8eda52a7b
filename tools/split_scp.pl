#!/usr/bin/env perl
# Split a Kaldi list (scp, utt2spk, any "key ..." file) into parts for --nj
# jobs, with Kaldi's semantics.
#
# Usage: tools/split_scp.pl [--utt2spk=UTT2SPK] IN_FILE OUT_1 OUT_2 ... OUT_N
#    or: tools/split_scp.pl -j NUM_JOBS JOB_ID [--one-based] [--utt2spk=UTT2SPK] IN_FILE [OUT]
#
#   Without --utt2spk the lines are cut into N contiguous parts in input order;
#   the part sizes differ by at most one line, the first parts taking the extra
#   lines. With --utt2spk=UTT2SPK all the lines of one speaker go to the same
#   part, speakers stay in input order and the parts are balanced by number of
#   lines as far as speaker boundaries allow.
#   With -j, only part JOB_ID of NUM_JOBS is written, to OUT or to standard
#   output; JOB_ID counts from 0, or from 1 with --one-based.
#   It is an error to ask for more parts than there are lines (or speakers).
use strict;
use warnings;

my $usage =
    "Usage: $0 [--utt2spk=UTT2SPK] IN_FILE OUT_1 OUT_2 ... OUT_N\n"
  . "   or: $0 -j NUM_JOBS JOB_ID [--one-based] [--utt2spk=UTT2SPK] IN_FILE [OUT]\n"
  . "  JOB_ID counts from 0 (from 1 with --one-based).\n";

my $num_jobs = 0;
my $job_id;
my $one_based = 0;
my $utt2spk_file = '';
while (@ARGV && $ARGV[0] =~ /^-./) {
  my $option = shift @ARGV;
  if ($option eq '-j') {
    @ARGV >= 2 or die "$0: -j needs NUM_JOBS and JOB_ID\n$usage";
    ($num_jobs, $job_id) = splice(@ARGV, 0, 2);
    $num_jobs =~ /^[1-9][0-9]*$/ or die "$0: bad NUM_JOBS '$num_jobs'\n$usage";
    $job_id =~ /^[0-9]+$/ or die "$0: bad JOB_ID '$job_id'\n$usage";
  } elsif ($option eq '--one-based') {
    $one_based = 1;
  } elsif ($option =~ /^--utt2spk=(.+)$/) {
    $utt2spk_file = $1;
  } elsif ($option eq '--utt2spk') {
    $utt2spk_file = shift @ARGV // die "$0: --utt2spk needs a file\n$usage";
  } elsif ($option eq '-h' || $option eq '--help') {
    print $usage;
    exit 0;
  } else {
    die "$0: unknown option '$option'\n$usage";
  }
}

my $in_file = shift @ARGV // die $usage;
my @outputs;
if ($num_jobs > 0) {
  @ARGV <= 1 or die $usage;
  my $index = $job_id - $one_based;
  ($index >= 0 && $index < $num_jobs)
    or die "$0: JOB_ID $job_id is out of range for $num_jobs jobs"
         . ($one_based ? " (one-based)" : " (zero-based)") . "\n";
  @outputs = ('/dev/null') x $num_jobs;
  $outputs[$index] = @ARGV ? $ARGV[0] : '-';
} else {
  @ARGV >= 1 or die $usage;
  @outputs = @ARGV;
}
my $num_parts = @outputs;

open(my $input, '<', $in_file) or die "$0: cannot open '$in_file': $!\n";
my @lines = <$input>;
close($input);
@lines > 0 or die "$0: '$in_file' is empty\n";

# @groups: lists of lines that must stay together, in input order.
my @groups;
if ($utt2spk_file eq '') {
  @groups = map { [$_] } @lines;
} else {
  my %utt2spk;
  open(my $u, '<', $utt2spk_file) or die "$0: cannot open '$utt2spk_file': $!\n";
  while (my $line = <$u>) {
    my @fields = split(' ', $line);
    @fields == 2 or die "$0: $utt2spk_file:$.: expected 'utterance speaker'\n";
    $utt2spk{$fields[0]} = $fields[1];
  }
  close($u);
  my %group_of_speaker;
  for my $i (0 .. $#lines) {
    my ($key) = split(' ', $lines[$i]);
    defined $key or die "$0: $in_file:" . ($i + 1) . ": empty line\n";
    my $spk = $utt2spk{$key};
    defined $spk or die "$0: $in_file:" . ($i + 1) . ": '$key' is not in $utt2spk_file\n";
    if (!exists $group_of_speaker{$spk}) {
      $group_of_speaker{$spk} = scalar @groups;
      push @groups, [];
    }
    push @{$groups[$group_of_speaker{$spk}]}, $lines[$i];
  }
}

my $what = $utt2spk_file eq '' ? 'lines' : 'speakers';
@groups >= $num_parts
  or die "$0: cannot split $in_file into $num_parts parts: it has only "
       . scalar(@groups) . " $what (reduce --nj)\n";

# Cut the groups into contiguous parts. With speakers, each part takes
# speakers while that brings it closer to an equal share of the lines still to
# be placed, always at least one speaker, and leaves at least one speaker for
# every later part.
my @parts;
my $remaining_lines = @lines;
my $next = 0;
for my $part (0 .. $num_parts - 1) {
  my $parts_left = $num_parts - $part;
  my @taken;
  my $size = 0;
  if ($parts_left == 1) {
    @taken = @groups[$next .. $#groups];
    $size += @$_ for @taken;
    $next = @groups;
  } elsif ($utt2spk_file eq '') {
    # Plain lines: Kaldi's sizes, the first (lines % parts) parts one longer.
    my $count = int(@lines / $num_parts) + ($part < @lines % $num_parts ? 1 : 0);
    @taken = @groups[$next .. $next + $count - 1];
    $size = $count;
    $next += $count;
  } else {
    my $target = $remaining_lines / $parts_left;
    while ($next < @groups - ($parts_left - 1)) {
      my $group_size = @{$groups[$next]};
      last if @taken && abs($size + $group_size - $target) >= abs($size - $target);
      push @taken, $groups[$next++];
      $size += $group_size;
    }
  }
  $remaining_lines -= $size;
  push @parts, [map { @$_ } @taken];
}

for my $part (0 .. $num_parts - 1) {
  my $name = $outputs[$part];
  my $out;
  if ($name eq '-') {
    $out = \*STDOUT;
  } else {
    open($out, '>', $name) or die "$0: cannot write '$name': $!\n";
  }
  print $out @{$parts[$part]};
  if ($name ne '-') {
    close($out) or die "$0: error writing '$name': $!\n";
  }
}
