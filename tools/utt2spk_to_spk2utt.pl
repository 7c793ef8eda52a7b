#!/usr/bin/env perl
# Turn an utt2spk file ("utt spk" a line) into a spk2utt file
# ("spk utt1 utt2 ..." a line).
#
# Usage: tools/utt2spk_to_spk2utt.pl [utt2spk] > spk2utt
#   Reads standard input when no file is given. Speakers are written sorted
#   (LC_ALL=C byte order), as the data-dir contract wants, and each speaker's
#   utterances in input order. (Kaldi's version keeps the speakers' order of
#   first appearance, which is not sorted when one speaker id is a prefix of
#   another: libri-2007_* utterances sort before libri-200_* ones.)
use strict;
use warnings;

if (@ARGV > 1 || (@ARGV == 1 && $ARGV[0] =~ /^-(h|-help)$/)) {
  print STDERR "Usage: $0 [utt2spk] > spk2utt\n";
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

my %speaker_utts;   # speaker -> [utterances]
while (my $line = <$input>) {
  my @fields = split(' ', $line);
  if (@fields != 2) {
    chomp $line;
    die "$0: $input_name:$.: expected 'utterance speaker', got '$line'\n";
  }
  my ($utt, $spk) = @fields;
  push @{$speaker_utts{$spk}}, $utt;
}
close($input) unless $input_name eq 'stdin';

for my $spk (sort keys %speaker_utts) {
  print join(' ', $spk, @{$speaker_utts{$spk}}), "\n";
}
