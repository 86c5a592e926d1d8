from kubegate.cli.main import main

main()
