#!/usr/bin/env perl
# Turn a spk2utt file ("spk utt1 utt2 ..." a line) into an utt2spk file
# ("utt spk" a line).
#
# Usage: tools/spk2utt_to_utt2spk.pl [spk2utt] > utt2spk
#   Reads standard input when no file is given. Lines are written in input
#   order; pipe through "LC_ALL=C sort" to get a sorted utt2spk.
use strict;
use warnings;

if (@ARGV > 1 || (@ARGV == 1 && $ARGV[0] =~ /^-(h|-help)$/)) {
  print STDERR "Usage: $0 [spk2utt] > utt2spk\n";
  exit(@ARGV == 1 ? 0 : 1);
}

my $input_name = @ARGV ? $ARGV[0] : '-';
my $input;
if ($input_name eq '-') {
  $input = \*STDIN;
  $input_name = 'stdin';
} else {
  open($input, '<', $input_name) or die "$0: cannot open '$input_name': $!\n";
}

while (my $line = <$input>) {
  my ($spk, @utts) = split(' ', $line);
  if (!defined $spk || !@utts) {
    chomp $line;
    die "$0: $input_name:$.: expected 'speaker utt1 [utt2 ...]', got '$line'\n";
  }
  print "$_ $spk\n" for @utts;
}
close($input) unless $input_name eq 'stdin';
