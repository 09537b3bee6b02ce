from batchlake.cli import main

main()
