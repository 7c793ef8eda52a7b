#!/usr/bin/env perl
# Keep the lines of a Kaldi file whose key is in a list.
#
# Usage: tools/filter_scp.pl [--exclude] [-f FIELD] ID_LIST [IN_FILE] > OUT_FILE
#   ID_LIST  a file whose first field of each line is an id (so an utt2spk or
#            another scp can serve as the list)
#   IN_FILE  the file to filter (standard input if omitted)
#   -f FIELD the 1-based field of IN_FILE that must be in the list (default 1)
#   --exclude  keep the lines whose field is NOT in the list instead
# Lines are written in input order.
use strict;
use warnings;

my $usage = "Usage: $0 [--exclude] [-f FIELD] ID_LIST [IN_FILE] > OUT_FILE\n"
          . "  Prints the lines of IN_FILE (default: stdin) whose FIELD-th field\n"
          . "  (default 1) is the first field of some line of ID_LIST;\n"
          . "  with --exclude, the lines whose field is not.\n";

my $exclude = 0;
my $field = 1;
while (@ARGV && $ARGV[0] =~ /^-/ && $ARGV[0] ne '-') {
  my $option = shift @ARGV;
  if ($option eq '--exclude') {
    $exclude = 1;
  } elsif ($option eq '-f') {
    $field = shift @ARGV;
    defined $field && $field =~ /^[1-9][0-9]*$/
      or die "$0: -f needs a positive field number\n$usage";
  } elsif ($option eq '-h' || $option eq '--help') {
    print $usage;
    exit 0;
  } else {
    die "$0: unknown option '$option'\n$usage";
  }
}
die $usage if @ARGV < 1 || @ARGV > 2;

my ($id_list, $in_file) = @ARGV;
my %wanted;
open(my $list, '<', $id_list) or die "$0: cannot open id list '$id_list': $!\n";
while (my $line = <$list>) {
  my ($id) = split(' ', $line);
  defined $id or die "$0: $id_list:$.: empty line\n";
  $wanted{$id} = 1;
}
close($list);

my ($input, $input_name);
if (defined $in_file && $in_file ne '-') {
  open($input, '<', $in_file) or die "$0: cannot open '$in_file': $!\n";
  $input_name = $in_file;
} else {
  $input = \*STDIN;
  $input_name = 'stdin';
}
while (my $line = <$input>) {
  my @fields = split(' ', $line);
  if (@fields < $field) {
    chomp $line;
    die "$0: $input_name:$.: line has no field $field: '$line'\n";
  }
  my $in_list = exists $wanted{$fields[$field - 1]};
  print $line if ($in_list xor $exclude);
}
close($input) if $input_name ne 'stdin';
