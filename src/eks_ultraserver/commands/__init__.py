"""Subcommands of the ``eks-ultraserver`` command-line tool (see ``eks_ultraserver.cli``)."""
