from gsmgw.cli import main

main()
