from unioncard.cli import main

main()
